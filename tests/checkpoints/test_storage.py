"""The run store and FastSqliteSaver on one writer: shared transactions, the lock, fallbacks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers.store_records import create, make_run
from helpers.workflows import counter
from langgraph.checkpoint.base import empty_checkpoint

from checkpoints._sqlite_writer import GroupCommitWriter
from checkpoints.sqlite import SqliteRunStore, lock_database, unlock_database
from checkpoints.storage import open_runtime_storage
from graph_runtime.errors import ConflictError, RunNotFound, StoreError
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, TaskStepResult, utcnow
from graph_runtime.recorder import EventRecorder
from graph_runtime.runtime import Runtime

STEPS = 6
LINEAR = counter("linear", STEPS)

# Runs in a subprocess: open the runtime's storage, report, then wait to be killed.
HOLDER = """
import asyncio, sys
from checkpoints.storage import open_runtime_storage

async def main():
    async with open_runtime_storage(sys.argv[1]):
        print("ready", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


def transactions(statements: list[str]) -> list[list[str]]:
    """The statements of each committed transaction, from a trace of the writer connection."""
    out: list[list[str]] = []
    current: list[str] | None = None
    for statement in statements:
        head = statement.strip().upper()
        if head.startswith("BEGIN"):
            current = []
        elif head.startswith("COMMIT") and current is not None:
            out.append(current)
            current = None
        elif current is not None:
            current.append(" ".join(head.split()))
    return out


async def test_a_superstep_commits_its_step_record_with_its_checkpoint(tmp_path: Path) -> None:
    async with Runtime(tmp_path / "runs.db") as rt:
        store = rt.store
        assert isinstance(store, SqliteRunStore) and store.shares_writer
        writer = store._writer
        # The backstop for a step record waiting for its checkpoint, long enough for a
        # loaded test machine: the checkpoint comes in the same superstep.
        writer._later_delay = 10.0
        statements: list[str] = []
        writer._conn.set_trace_callback(statements.append)
        commits = writer.commits
        response = await rt.run(LINEAR, {}, run_id="r")
        writer._conn.set_trace_callback(None)
        assert response.status is TaskStatus.COMPLETED and response.result == {"count": STEPS}
        used = writer.commits - commits
        steps = await rt.steps("r")
        stored = await rt.store.events_after("r")
    assert [s.step for s in steps] == [f"n{i}" for i in range(STEPS)]
    # Each step's event is stored in its steps row, so it commits with the record.
    assert [e.data["step"] for e in stored if e.type is EventType.STEP] == [
        f"n{i}" for i in range(STEPS)
    ]
    with_steps = [t for t in transactions(statements) if any("INTO STEPS" in s for s in t)]
    assert len(with_steps) == STEPS  # one superstep, one transaction
    for transaction in with_steps:
        # ...the one that also holds the task's writes and the checkpoint after them.
        assert any("INTO LG_WRITES" in s for s in transaction)
        assert any("INTO LG_CHECKPOINTS" in s for s in transaction)
    # A commit per superstep, two for LangGraph's input checkpoints, and the workflow, the
    # run, its start, its end (the end event with the final status).
    assert used <= STEPS + 6, used


async def test_a_failing_store_job_fails_alone_beside_a_checkpoint(tmp_path: Path) -> None:
    async with open_runtime_storage(tmp_path / "runs.db") as storage:
        saver, store = storage.checkpointer, storage.store
        writer = store._writer
        commits = writer.commits
        config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        # Queued together: the ghost's record (no such run) and a checkpoint share a batch.
        ghost = store.record_nowait("ghost", steps=[TaskStepResult(step="a", task_id="x")])
        saved = await saver.aput(config, empty_checkpoint(), {}, {})
        with pytest.raises(RunNotFound):
            await ghost
        assert await saver.aget_tuple(saved) is not None
        assert writer.commits - commits == 1


async def test_a_lazy_record_waits_for_company_then_commits_alone(tmp_path: Path) -> None:
    async with open_runtime_storage(tmp_path / "runs.db") as storage:
        store = storage.store
        await store.create_run(make_run("r"), Event(run_id="r", id=1, type=EventType.STATUS))
        store._writer._later_delay = 0.05
        done: list[BaseException | None] = []
        lazy = store.record_nowait(
            "r", steps=[TaskStepResult(step="a", task_id="t1")], lazy=True, on_done=done.append
        )
        await asyncio.sleep(0.01)
        assert not lazy.done() and done == []  # no commit asked for yet
        await asyncio.wait_for(lazy, 2)  # the backstop commits it
        assert done == [None]
        lazy = store.record_nowait("r", steps=[TaskStepResult(step="b", task_id="t2")], lazy=True)
        barrier = store.record_nowait("r")  # nothing to write: waits for what is queued
        await asyncio.wait_for(barrier, 0.04)  # well before the backstop
        assert lazy.done()
        assert [s.step for s in await store.steps("r")] == ["a", "b"]


async def test_on_done_runs_before_a_task_waiting_for_the_same_commit_resumes(
    tmp_path: Path,
) -> None:
    async with open_runtime_storage(tmp_path / "runs.db") as storage:
        writer: GroupCommitWriter = storage.store._writer
        order: list[str] = []
        writer.submit_callback(None, lambda result, error: order.append("callback"))
        waiter = writer.submit_async(None)
        waiter.add_done_callback(lambda _: order.append("waiter"))
        await waiter
        await asyncio.sleep(0)
        assert order == ["callback", "waiter"]


async def test_the_lock_is_taken_before_the_file_is_touched(tmp_path: Path) -> None:
    db = tmp_path / "data" / "runs.db"
    db.parent.mkdir()
    fd = lock_database(db)
    try:
        with pytest.raises(StoreError, match="another graph-runtime process is using"):
            async with open_runtime_storage(db):
                pass
        assert not db.exists()  # the checkpointer was never opened
    finally:
        unlock_database(fd)
    async with open_runtime_storage(db):
        with pytest.raises(StoreError):  # within one process too
            async with Runtime(db):
                pass


async def test_the_runtime_storage_refuses_a_second_process(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(db), stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"ready\n"
        with pytest.raises(StoreError) as info:
            async with Runtime(db):
                pass
        assert "another graph-runtime process is using" in info.value.message
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    async with Runtime(db) as rt:  # the kernel dropped the dead holder's lock
        assert (await rt.run(LINEAR, {})).status is TaskStatus.COMPLETED


async def test_the_end_event_is_stored_with_the_final_status(tmp_path: Path) -> None:
    async with Runtime(tmp_path / "runs.db") as rt:
        record = await rt.submit(LINEAR, {}, run_id="r")
        await rt.wait(record.run_id, timeout=10)
        # No await in between: the final status and the end event are one transaction.
        events = await rt.store.events_after("r")
    assert events[-1].type is EventType.END
    assert events[-2].type is EventType.STATUS and events[-2].data["new"] == "completed"


@pytest.mark.parametrize("shared", [True, False], ids=["shared-writer", "own-writer"])
async def test_step_events_read_back_as_they_were_published(tmp_path: Path, shared: bool) -> None:
    # A step's event is stored in its steps row unless its result is not plain JSON; either
    # way the store gives back the event the recorder published, and after every event of
    # the events table with a lower id.
    async with open_runtime_storage(tmp_path / "runs.db") as storage:
        store = storage.store if shared else None
        async with AsyncExitStack() as stack:
            if store is None:
                store = await stack.enter_async_context(SqliteRunStore.open(tmp_path / "own.db"))
            await create(store, "r")
            published: list[Event] = []
            persist = partial(store.queue_records, "r")
            recorder = EventRecorder(
                "r", last_event_id=1, persist=persist, publish=published.append, keep_steps=False
            )
            started = utcnow()
            recorder.log("info", "before")
            recorder.step(
                node_id="plain",
                node_type="transform",
                task_id="t1",
                attempt=1,
                started_at=started,
                result={"n": [1, 2.5, "x", None, True]},
            )
            recorder.step(
                node_id="odd",
                node_type="transform",
                task_id="t2",
                attempt=1,
                started_at=started,
                result={"when": started, "pair": (1, 2)},
            )
            recorder.step(
                node_id="failed",
                node_type="transform",
                task_id="t3",
                attempt=1,
                started_at=started,
                error_code=ErrorCode.EXECUTION_ERROR,
                error_message="boom",
            )
            recorder.log("info", "after")
            await recorder.flush()
            assert [e.id for e in published] == [2, 3, 4, 5, 6]
            assert await store.events_after("r", 1) == published
            assert await store.events_after("r", 3, limit=2) == published[2:4]
            assert await store.last_event_id("r") == 6
            assert [s.step for s in await store.steps("r")] == ["plain", "odd", "failed"]
            # An id a step's event holds is taken: a status event cannot have it too.
            with pytest.raises(ConflictError):
                await store.transition(
                    "r", TaskStatus.RUNNING, Event(run_id="r", id=3, type=EventType.STATUS)
                )
