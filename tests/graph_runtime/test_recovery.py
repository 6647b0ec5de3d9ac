"""Start-up recovery in-process: poison runs fail, clean drains do not count, human pauses stay.

A shutdown leaves its runs ``running`` (owned by nobody); the owner and the attempts a dead
process would have left are written into the store. tests/faults does the real ``kill -9``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from checkpoints.storage import open_runtime_storage
from graph_runtime.config import RuntimeConfig
from graph_runtime.models import ErrorCode, TaskStatus
from graph_runtime.runtime import Runtime

SCHEMA = "graph-runtime/workflow/v1"

SLOW: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "slow",
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "nap", "type": "wait", "config": {"seconds": "input.seconds"}},
        {"id": "out", "type": "output", "config": {"select": {"tag": "input.tag"}}},
    ],
    "edges": [{"from": "start", "to": "nap"}, {"from": "nap", "to": "out"}],
}

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


def _config(**kw: Any) -> RuntimeConfig:
    return RuntimeConfig(shutdown_grace_seconds=0.05, max_concurrent_runs=1, **kw)


async def _until(rt: Runtime, run_id: str, status: TaskStatus) -> None:
    async with asyncio.timeout(10):
        while (await rt.get_run(run_id)).status is not status:
            await asyncio.sleep(0.01)


async def _set_attempts(db: Path, run_id: str, attempts: int) -> None:
    # A clean shutdown drained the run (no owner); make it look like a dead process's.
    async with open_runtime_storage(db) as storage:
        await storage.store.update_run(run_id, attempts=attempts, owner="a-dead-process")


async def test_a_poison_run_fails_on_start_and_the_queue_moves_on(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, config=_config()) as rt:
        poison = await rt.submit(SLOW, {"seconds": 30, "tag": "p"})
        await _until(rt, poison.run_id, TaskStatus.RUNNING)
        queued = await rt.submit(SLOW, {"seconds": 0, "tag": "q"})
    async with open_runtime_storage(db) as storage:
        assert (await storage.store.get_run(poison.run_id)).status is TaskStatus.RUNNING
    # As if three processes had died running it (tests/faults kills them for real).
    await _set_attempts(db, poison.run_id, 3)

    async with Runtime(db, config=_config()) as rt:
        failed = await rt.get_run(poison.run_id)
        assert failed.status is TaskStatus.FAILED
        assert failed.error_code is ErrorCode.RETRY_EXHAUSTED
        assert failed.error is not None and "died 3 times" in failed.error
        assert failed.owner is None
        done = await rt.wait(queued.run_id, timeout=10)
        assert done.status is TaskStatus.COMPLETED
        statuses = [
            e.data["new"] async for e in rt.events(poison.run_id) if e.type.value == "status"
        ]
    assert statuses[-3:] == ["running", "crashed", "failed"]


async def test_below_the_limit_a_crashed_run_resumes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, config=_config()) as rt:
        run = await rt.submit(SLOW, {"seconds": 30, "tag": "r"})
        await _until(rt, run.run_id, TaskStatus.RUNNING)
    await _set_attempts(db, run.run_id, 2)
    async with Runtime(db, config=_config(max_run_attempts=3)) as rt:
        record = await rt.get_run(run.run_id)
        assert record.status is TaskStatus.RUNNING
        assert record.attempts == 3


async def test_a_clean_drain_gives_its_attempt_back(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    config = RuntimeConfig(shutdown_grace_seconds=5, max_concurrent_runs=1)
    async with Runtime(db, config=config) as rt:
        run = await rt.submit(SLOW, {"seconds": 0.3, "tag": "d"})
        await _until(rt, run.run_id, TaskStatus.RUNNING)
    async with open_runtime_storage(db) as storage:
        left = await storage.store.get_run(run.run_id)
    assert (left.status, left.attempts, left.owner) == (TaskStatus.RUNNING, 0, None)
    async with Runtime(db, config=config) as rt:
        done = await rt.wait(run.run_id, timeout=10)
        statuses = [e.data["new"] async for e in rt.events(run.run_id) if e.type.value == "status"]
        logs = [e.data["message"] async for e in rt.events(run.run_id) if e.type.value == "log"]
    assert done.status is TaskStatus.COMPLETED
    # Resumed at start-up without being called crashed; the drain says so in the log.
    assert statuses == ["pending", "running", "completed"]
    assert any("drained at shutdown" in m for m in logs)


async def test_a_run_waiting_on_a_human_stays_paused_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, config=_config()) as rt:
        run = await rt.submit(ASK, {})
        assert (await rt.wait(run.run_id, timeout=10)).status is TaskStatus.PAUSED
    for _ in range(2):
        async with Runtime(db, config=_config()) as rt:
            assert (await rt.get_run(run.run_id)).status is TaskStatus.PAUSED
    async with Runtime(db, config=_config()) as rt:
        await rt.resume(run.run_id, {"ok": True})
        done = await rt.wait(run.run_id, timeout=10)
    assert done.status is TaskStatus.COMPLETED
    assert done.result == {"decision": {"ok": True}}
