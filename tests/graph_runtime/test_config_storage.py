"""Storage settings reach the database writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pydantic
import pytest

from checkpoints.sqlite_saver import FastSqliteSaver
from graph_runtime.config import RuntimeConfig
from graph_runtime.models import TaskStatus
from graph_runtime.runtime import Runtime

COUNTER = {
    "schema": "graph-runtime/workflow/v1",
    "id": "counter",
    "state": {"n": {"type": "integer", "default": 0}},
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "inc", "type": "transform", "config": {"set": {"n": "state.n + 1"}}},
    ],
    "edges": [{"from": "start", "to": "inc"}, {"from": "inc", "to": "__end__"}],
}


@pytest.mark.parametrize(("setting", "expected"), [(None, "NORMAL"), ("full", "FULL")])
async def test_sqlite_synchronous_reaches_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None, expected: str
) -> None:
    if setting is not None:
        monkeypatch.setenv("GRAPH_RUNTIME_SQLITE_SYNCHRONOUS", setting)
    config = RuntimeConfig(shutdown_grace_seconds=0.2)
    assert config.sqlite_synchronous == expected
    async with Runtime(tmp_path / "s.db", config=config) as rt:
        saver = rt.compiler.checkpointer
        assert isinstance(saver, FastSqliteSaver) and saver.synchronous == expected
        response = await rt.run(COUNTER, {})
    assert response.status is TaskStatus.COMPLETED
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_unknown_synchronous_value_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="sqlite_synchronous"):
        RuntimeConfig(sqlite_synchronous="sometimes")  # type: ignore[arg-type]
