"""The fault suite: the real server in a subprocess, killed, restarted, and made to fail.

Each scenario is checked against the same workflow's fault-free run on the same server:
the same final result, one completed step record per task (and the same completed steps),
event ids 1..n with no gap and exactly one ``end`` (the last), a legal status path, and no run
left ``running``/``stopping`` without an owner.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.fault_checks import (
    API,
    check_events,
    check_like_baseline,
    events,
    status_of,
    submit,
    unowned,
    wait_step,
)
from helpers.server_process import ServerProcess
from helpers.sse import SSEEvent, iter_sse
from helpers.waits import wait_for_status
from helpers.workflows import SCHEMA, SLOW, chain

pytestmark = pytest.mark.timeout(120)

# Three links of 0.4 s waits: a kill lands mid-node, a SIGTERM drains at a boundary.
DRIP = chain("fdrip", 3, seconds=0.4)

ASK: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "ask",
    "state": {"decision": {"type": "object", "default": {}}},
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "ask", "type": "human", "config": {"prompt": "ok?", "output": "decision"}},
        {"id": "out", "type": "output", "config": {"select": {"decision": "state.decision"}}},
    ],
    "edges": [{"from": "start", "to": "ask"}, {"from": "ask", "to": "out"}],
}


# -- scenarios ------------------------------------------------------------------------------------


# LangGraph's AsyncSqliteSaver instead of FastSqliteSaver: the run store then shares the
# saver's connection and its commits (checkpoints._aiosqlite_shared).
LANGGRAPH = {"GRAPH_RUNTIME_CHECKPOINTER": "langgraph-sqlite"}


def assert_on_async_sqlite_saver(db: Path) -> None:
    with closing(sqlite3.connect(db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"checkpoints", "writes"} <= tables  # AsyncSqliteSaver's own tables


@pytest.mark.parametrize("env", [{}, LANGGRAPH], ids=["fast", "langgraph-sqlite"])
def test_kill_mid_node_then_restart_completes(tmp_path: Path, env: dict[str, str]) -> None:
    with ServerProcess(tmp_path / "runs.db", **env) as server:
        submit(server.client, "k", DRIP)
        wait_step(server.client, "k", "t0")  # now inside w1's wait
        server.kill()
        server.start()
        submit(server.client, "base", DRIP)
        path = check_like_baseline(server, "k", "base")
    assert ("running", "crashed") in path and ("crashed", "running") in path
    if env:
        assert_on_async_sqlite_saver(tmp_path / "runs.db")


@pytest.mark.parametrize(
    ("point", "env"),
    [
        ("after_checkpoint=crash:3", {}),
        ("after_step_record=crash:2", {}),
        # With AsyncSqliteSaver a step record commits with its task's writes: dies the moment
        # the saver's commit holding the 2nd (4th) record returned.
        ("after_step_record=crash:2", LANGGRAPH),
        ("after_step_record=crash:4", LANGGRAPH),
    ],
    ids=["fast-checkpoint", "fast-record", "langgraph-record-2", "langgraph-record-4"],
)
def test_kill_between_checkpoint_and_step_record_keeps_one_record_per_task(
    tmp_path: Path, point: str, env: dict[str, str]
) -> None:
    with ServerProcess(tmp_path / "runs.db", autostart=False, **env) as server:
        # Dies right after the 3rd checkpoint (or the 2nd step-record write) committed.
        server.start(GRAPH_RUNTIME_FAILPOINTS=point)
        submit(server.client, "c", DRIP)
        assert server.wait_death() != 0
        server.start()
        submit(server.client, "base", DRIP)
        path = check_like_baseline(server, "c", "base")
    assert ("running", "crashed") in path  # it was cut, and recovered at start-up
    if env:
        assert_on_async_sqlite_saver(tmp_path / "runs.db")


def test_kill_before_the_first_checkpoint_restarts_from_the_input(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db", autostart=False) as server:
        # Dies right after pending -> running committed: no checkpoint exists yet. A run
        # that starts at once is stored running by the submit itself, so the process may
        # die before it answers.
        server.start(GRAPH_RUNTIME_FAILPOINTS="after_status_write=crash:1")
        try:
            submit(server.client, "f", DRIP)
        except httpx.TransportError:
            pass
        assert server.wait_death() != 0
        server.start()
        submit(server.client, "base", DRIP)
        path = check_like_baseline(server, "f", "base")
    assert ("running", "crashed") in path  # it was cut, and recovered at start-up


def test_kill_while_paused_on_human_stays_paused_then_resumes(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db") as server:
        submit(server.client, "h", ASK)
        wait_for_status(server.client, "h", "paused", timeout=20)
        server.kill()
        server.start()
        assert status_of(server.client, "h")["status"] == "paused"
        answer = {"value": {"ok": True}}
        assert server.client.post(f"{API}/h/resume", json=answer).status_code == 202
        submit(server.client, "base", ASK)
        wait_for_status(server.client, "base", "paused", timeout=20)
        assert server.client.post(f"{API}/base/resume", json=answer).status_code == 202
        path = check_like_baseline(server, "h", "base")
    assert "crashed" not in {new for _, new in path}


def test_recovery_mark_leaves_the_run_crashed_until_a_client_resumes(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db", GRAPH_RUNTIME_RECOVERY="mark") as server:
        submit(server.client, "m", DRIP)
        wait_step(server.client, "m", "t0")
        server.kill()
        server.start()
        record = status_of(server.client, "m")
        assert record["status"] == "crashed"
        assert server.client.post(f"{API}/m/resume").status_code == 202
        submit(server.client, "base", DRIP)
        check_like_baseline(server, "m", "base")


def test_a_poison_run_fails_after_max_attempts_and_the_queue_moves_on(tmp_path: Path) -> None:
    limits = {"GRAPH_RUNTIME_MAX_RUN_ATTEMPTS": "2", "GRAPH_RUNTIME_MAX_CONCURRENT_RUNS": "1"}
    with ServerProcess(tmp_path / "runs.db", **limits) as server:
        submit(server.client, "p", DRIP)
        wait_step(server.client, "p", "t0")
        submit(server.client, "q", DRIP)  # waits in the queue behind p (one run at a time)
        server.kill()  # death 1
        # Resumed first, and dies again at its 2nd checkpoint: death 2.
        server.start(expect_death=True, GRAPH_RUNTIME_FAILPOINTS="after_checkpoint=crash:2")
        server.start()
        poison = status_of(server.client, "p")
        assert poison["status"] == "failed" and poison["error_code"] == "E005"
        assert "died 2 times" in poison["error"]
        submit(server.client, "base", DRIP)
        check_like_baseline(server, "q", "base")
        path = check_events(events(server.client, "p"))
        assert path[-2:] == [("running", "crashed"), ("crashed", "failed")]
        assert unowned(server.db) == []


def test_sigterm_with_an_open_stream_then_restart_and_reconnect(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db") as server:
        submit(server.client, "s", DRIP)
        seen: list[SSEEvent] = []
        proc = server.proc
        assert proc is not None
        with _AnyEnd(), server.client.stream("GET", f"{API}/s/events") as stream:
            for item in iter_sse(stream):
                if isinstance(item, SSEEvent):
                    seen.append(item)
                    if item.event == "step" and len([e for e in seen if e.event == "step"]) == 2:
                        proc.send_signal(15)
        # The stream ended without the run's `end`: the server closed it on shutdown.
        assert seen and seen[-1].event != "end"
        # uvicorn re-raises the signal once its graceful shutdown is complete.
        assert server.wait_death(15) in (0, -15)
        assert "Application shutdown complete" in server.log.read_text()
        server.start()
        rest = events(server.client, "s", **{"Last-Event-ID": str(seen[-1].id)})
        check_events(seen + rest)
        submit(server.client, "base", DRIP)
        path = check_like_baseline(server, "s", "base")
    # Drained cleanly, then resumed at start-up: never called crashed.
    assert "crashed" not in {new for _, new in path}
    assert ("running", "completed") in path


class _AnyEnd:
    """Accept a stream that ends cleanly or is cut at shutdown."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, httpx.TransportError)


def test_two_concurrent_resumes_one_wins(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db") as server:
        submit(server.client, "r", ASK)
        wait_for_status(server.client, "r", "paused", timeout=20)
        codes: list[int] = []
        barrier = threading.Barrier(2)

        def resume() -> None:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                barrier.wait()
                codes.append(client.post(f"{API}/r/resume", json={"value": {"ok": 1}}).status_code)

        threads = [threading.Thread(target=resume) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert sorted(codes) == [202, 409]
        submit(server.client, "base", ASK)
        wait_for_status(server.client, "base", "paused", timeout=20)
        assert (
            server.client.post(f"{API}/base/resume", json={"value": {"ok": 1}}).status_code == 202
        )
        path = check_like_baseline(server, "r", "base")
        late = server.client.post(f"{API}/r/resume", json={"value": {"ok": 1}})
        assert late.status_code == 409  # after completion: never re-run
    assert [new for _, new in path].count("running") == 2  # started once, resumed once


def test_two_concurrent_submits_with_one_id_make_one_run(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db") as server:
        client = server.client
        assert client.post("/api/v1/workflows", json=DRIP).status_code in (200, 201)
        body = {"execution_id": "d", "workflow_id": "fdrip", "input_data": {}}
        codes: list[int] = []
        barrier = threading.Barrier(2)

        def post() -> None:
            with httpx.Client(base_url=server.base_url, timeout=10) as c:
                barrier.wait()
                codes.append(c.post(API, json=body).status_code)

        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert all(code < 300 for code in codes), codes
        submit(client, "base", DRIP)
        path = check_like_baseline(server, "d", "base")
    assert [new for _, new in path].count("pending") == 1


def test_stop_mid_node(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db") as server:
        client = server.client
        submit(client, "x", SLOW, seconds=30, tag="t")
        wait_for_status(client, "x", "running", timeout=20)
        wait_step(client, "x", "start")
        assert client.post(f"{API}/x/stop").status_code == 202
        done = wait_for_status(client, "x", "stopped", timeout=10)
        assert done["error_code"] == "E004"
        path = check_events(events(client, "x"))
        assert path[-2:] == [("running", "stopping"), ("stopping", "stopped")]
        steps = client.get(f"{API}/x/steps").json()["steps"]
        cut = [s for s in steps if s["step"] == "nap"]
        assert len(cut) == 1 and cut[0]["error_code"] == "E004" and not cut[0]["completed"]
        assert client.post(f"{API}/x/resume").status_code == 409
        assert unowned(server.db) == []


def test_sse_reconnect_across_a_kill_has_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "runs.db") as server:
        submit(server.client, "e", DRIP)
        proc = server.proc
        assert proc is not None
        seen: list[SSEEvent] = []
        with _AnyEnd(), server.client.stream("GET", f"{API}/e/events") as stream:
            for item in iter_sse(stream):
                if isinstance(item, SSEEvent):
                    seen.append(item)
                    if item.event == "step" and item.json()["data"].get("step") == "t0":
                        proc.send_signal(signal.SIGKILL)
        assert server.wait_death() == -signal.SIGKILL
        # Every event a client saw was committed first: the restarted server's replay
        # continues exactly after the last one.
        server.start()
        rest = events(server.client, "e", **{"Last-Event-ID": str(seen[-1].id)})
        check_events(seen + rest)
        submit(server.client, "base", DRIP)
        check_like_baseline(server, "e", "base")
