"""Kill -9 scenarios with LangGraph's AsyncSqliteSaver (GRAPH_RUNTIME_CHECKPOINTER).

The run store shares the saver's connection and its commits (checkpoints._aiosqlite_shared):
a step record commits with its task's writes. Checked as in test_faults.py, against the same
workflow's fault-free run on the same server.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from helpers.fault_checks import check_like_baseline, submit, wait_step
from helpers.server_process import ServerProcess
from helpers.workflows import chain

pytestmark = pytest.mark.timeout(120)

DRIP = chain("ldrip", 3, seconds=0.4)
LANGGRAPH = {"GRAPH_RUNTIME_CHECKPOINTER": "langgraph-sqlite"}


def test_kill_mid_node_then_restart_completes(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db", **LANGGRAPH) as server:
        submit(server.client, "k", DRIP)
        wait_step(server.client, "k", "t0")  # now inside w1's wait
        server.kill()
        server.start()
        submit(server.client, "base", DRIP)
        path = check_like_baseline(server, "k", "base")
    assert ("running", "crashed") in path and ("crashed", "running") in path
    with closing(sqlite3.connect(tmp_path / "runs.db")) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"checkpoints", "writes"} <= tables  # AsyncSqliteSaver's own tables


@pytest.mark.parametrize("point", ["after_step_record=crash:2", "after_step_record=crash:4"])
def test_kill_right_after_a_step_record_keeps_one_record_per_task(
    tmp_path: Path, point: str
) -> None:
    with ServerProcess(tmp_path / "runs.db", autostart=False, **LANGGRAPH) as server:
        # Dies the moment the saver's commit holding the 2nd (4th) step record returned.
        server.start(GRAPH_RUNTIME_FAILPOINTS=point)
        submit(server.client, "c", DRIP)
        assert server.wait_death() != 0
        server.start()
        submit(server.client, "base", DRIP)
        path = check_like_baseline(server, "c", "base")
    assert ("running", "crashed") in path
