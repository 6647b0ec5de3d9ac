"""The run store on LangGraph's AsyncSqliteSaver connection (checkpointer="langgraph-sqlite")."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.store_records import create, write_lock_held
from helpers.workflows import SLOW, chain, counter
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from checkpoints._sqlite_writer import GroupCommitWriter
from checkpoints.sqlite import SqliteRunStore
from checkpoints.storage import open_runtime_storage
from checkpoints.store import record_rows
from graph_runtime.errors import RunNotFound, StoreError
from graph_runtime.models import Event, EventType, TaskStatus, TaskStepResult
from graph_runtime.runtime import Runtime

STEPS = 5
LINEAR = counter("linear", STEPS)
CONFIG: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def committed_steps(db: Path) -> list[str]:
    """Step names another connection sees (committed rows only)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT step FROM steps ORDER BY seq").fetchall()
    conn.close()
    return [r[0] for r in rows]


def step(name: str) -> TaskStepResult:
    return TaskStepResult(step=name, task_id=name)


async def test_the_store_commits_a_step_record_with_the_tasks_writes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, checkpointer="langgraph-sqlite") as rt:
        store, saver = rt.store, rt.manager.compiler.checkpointer
        assert isinstance(store, SqliteRunStore) and isinstance(saver, AsyncSqliteSaver)
        assert store.shares_writer and rt.manager.shared_commits
        # After each put_writes of a node task, its step record is committed: a process
        # killed right then resumes past the task with the task's record in the store.
        seen: list[tuple[str, list[str]]] = []
        put_writes = saver.aput_writes

        async def checked(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
            await put_writes(config, writes, task_id, task_path)
            seen.append((task_id, committed_steps(db)))

        saver.aput_writes = checked  # type: ignore[method-assign]
        events = [e async for e in rt.stream(LINEAR, {}, run_id="r")]
        steps = await rt.steps("r")
    assert events[-1].type is EventType.END and events[-1].data["result"] == {"count": STEPS}
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [s.step for s in steps] == [f"n{i}" for i in range(STEPS)]
    by_task = {s.task_id: s.step for s in steps}
    node_puts = [(by_task[task], committed) for task, committed in seen if task in by_task]
    assert [name for name, _ in node_puts] == [f"n{i}" for i in range(STEPS)]
    for name, committed in node_puts:
        assert name in committed


async def test_a_record_queued_while_the_saver_works_goes_in_before_its_next_save(
    tmp_path: Path,
) -> None:
    async with open_runtime_storage(tmp_path / "runs.db", checkpointer="langgraph-sqlite") as st:
        store, saver = st.store, st.checkpointer
        assert isinstance(saver, AsyncSqliteSaver)
        await create(store, "r")
        statements: list[str] = []
        writer: GroupCommitWriter = store._writer
        writer._conn.set_trace_callback(statements.append)
        async with saver.lock:  # the saver is using its connection
            lazy = store.record_nowait("r", steps=[step("a")], lazy=True)
            urgent = store.record_nowait("r", steps=[step("b")], urgent=True)
            save = asyncio.create_task(saver.aput(CONFIG, empty_checkpoint(), {}, {}))
            await asyncio.sleep(0.02)
            assert not lazy.done() and not urgent.done() and not save.done()
        await asyncio.wait_for(asyncio.gather(lazy, urgent, save), 5)
        writer._conn.set_trace_callback(None)
        assert [s.step for s in await store.steps("r")] == ["a", "b"]
    text = [" ".join(s.upper().split()) for s in statements]
    first_step = next(i for i, s in enumerate(text) if "INTO STEPS" in s)
    first_checkpoint = next(i for i, s in enumerate(text) if "INTO CHECKPOINTS" in s)
    assert first_step < first_checkpoint


async def test_a_lazy_record_joins_the_savers_commit_or_the_backstop(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with open_runtime_storage(db, checkpointer="langgraph-sqlite") as st:
        store, saver = st.store, st.checkpointer
        await create(store, "r")
        writer: GroupCommitWriter = store._writer
        writer._later_delay = 10.0
        done: list[BaseException | None] = []
        lazy = store.record_nowait("r", steps=[step("a")], lazy=True, on_done=done.append)
        await asyncio.sleep(0.01)
        # Queued for the saver's next commit: no other connection sees it yet.
        assert not lazy.done() and done == [] and committed_steps(db) == []
        await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        # The saver's commit made it durable, and said so before aput returned.
        assert lazy.done() and done == [None] and committed_steps(db) == ["a"]
        writer._later_delay = 0.05
        lazy = store.record_nowait("r", steps=[step("b")], lazy=True)
        await asyncio.wait_for(lazy, 5)  # nothing else commits: the backstop does
        assert committed_steps(db) == ["a", "b"]


async def test_a_followed_record_keeps_no_timer_and_joins_the_next_commit(
    tmp_path: Path,
) -> None:
    # `followed`: the caller knows a commit follows (its task's writes), so no backstop
    # timer is armed; the saver's next commit takes the record along.
    db = tmp_path / "runs.db"
    async with open_runtime_storage(db, checkpointer="langgraph-sqlite") as st:
        store, saver = st.store, st.checkpointer
        await create(store, "r")
        writer: GroupCommitWriter = store._writer
        writer._later_delay = 0.01
        done: list[BaseException | None] = []
        rows = record_rows("r", [], [step("a")], [])
        store.queue_records("r", rows, lazy=True, followed=True, on_done=done.append)
        assert not writer._later
        await asyncio.sleep(0.05)  # five backstop delays: none commits it
        assert done == [] and committed_steps(db) == []
        await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        assert done == [None] and committed_steps(db) == ["a"]

        # A commit that cannot take the queue (the writer's prelude is due: it runs first)
        # has the writer flush it itself, prelude first.
        ran: list[str] = []

        def prelude(conn: sqlite3.Connection) -> None:
            ran.append("prelude")

        writer.set_prelude(prelude, due=lambda: not ran)
        rows = record_rows("r", [], [step("b")], [])
        store.queue_records(
            "r", rows, lazy=True, followed=True, on_done=lambda e: ran.append(f"b {e}")
        )
        await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        for _ in range(100):
            if len(ran) == 2:
                break
            await asyncio.sleep(0.01)
        assert ran == ["prelude", "b None"] and committed_steps(db) == ["a", "b"]


async def test_a_failing_record_in_the_savers_commit_fails_alone(tmp_path: Path) -> None:
    async with open_runtime_storage(tmp_path / "runs.db", checkpointer="langgraph-sqlite") as st:
        store, saver = st.store, st.checkpointer
        await create(store, "r")
        good = store.record_nowait("r", steps=[step("a")], lazy=True)
        ghost = store.record_nowait("ghost", steps=[step("x")], lazy=True)  # no such run
        saved = await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        await asyncio.wait_for(good, 5)
        with pytest.raises(RunNotFound):
            await asyncio.wait_for(ghost, 5)
        assert [s.step for s in await store.steps("r")] == ["a"]
        assert await saver.aget_tuple(saved) is not None


async def test_a_one_row_record_joins_the_savers_commit_without_a_savepoint(
    tmp_path: Path,
) -> None:
    async with open_runtime_storage(tmp_path / "runs.db", checkpointer="langgraph-sqlite") as st:
        store, saver = st.store, st.checkpointer
        await create(store, "r")
        statements: list[str] = []
        store._writer._conn.set_trace_callback(statements.append)
        good = store.record_nowait("r", steps=[step("a")], lazy=True)
        await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        await asyncio.wait_for(good, 5)
        assert any("INTO steps" in s for s in statements)
        assert not any("SAVEPOINT" in s for s in statements)
        # Alone and failing: the saver's checkpoint commits, the record fails by itself.
        ghost = store.record_nowait("ghost", steps=[step("x")], lazy=True)  # no such run
        saved = await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        with pytest.raises(RunNotFound):
            await asyncio.wait_for(ghost, 5)
        store._writer._conn.set_trace_callback(None)
        assert await saver.aget_tuple(saved) is not None
        assert [s.step for s in await store.steps("r")] == ["a"]


async def test_another_connections_write_lock_never_blocks_the_loop(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with open_runtime_storage(db, checkpointer="langgraph-sqlite", busy_timeout=5) as st:
        store = st.store
        await create(store, "r")
        with write_lock_held(db) as release:
            write = store.record_nowait("r", steps=[step("a")], urgent=True)
            lazy = store.record_nowait("r", steps=[step("b")], lazy=True)
            started = time.monotonic()
            for _ in range(10):  # the loop keeps turning while the writes wait for the lock
                await asyncio.sleep(0.01)
            assert time.monotonic() - started < 1.0
            assert not write.done() and not lazy.done()
            release.set()
            await asyncio.wait_for(asyncio.gather(write, lazy), 5)
        assert [s.step for s in await store.steps("r")] == ["a", "b"]


async def test_a_write_lock_held_past_the_busy_timeout_fails_the_write(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with open_runtime_storage(db, checkpointer="langgraph-sqlite", busy_timeout=0.2) as st:
        store = st.store
        await create(store, "r")
        with write_lock_held(db):
            event = Event(run_id="r", id=2, type=EventType.STATUS, data={"new": "running"})
            with pytest.raises(StoreError):
                await store.transition("r", TaskStatus.RUNNING, event)
        assert store.health().writable is False
        await store.probe()  # the lock is gone: writes go through again
        assert store.health().writable is True


async def test_concurrent_runs_pauses_and_stops_keep_every_record(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, checkpointer="langgraph-sqlite") as rt:
        runs = [await rt.submit(LINEAR, {}, run_id=f"r{i}") for i in range(12)]
        slow = await rt.submit(SLOW, {"seconds": 5, "tag": "x"}, run_id="slow")
        paused = await rt.submit(chain("drip", 4, seconds=0.05), {}, run_id="drip")
        while (await rt.store.get_run("drip")).status is not TaskStatus.RUNNING:
            await asyncio.sleep(0.005)
        await rt.pause("drip")
        await rt.stop("slow")
        done = [await rt.wait(r.run_id, timeout=30) for r in runs]
        assert all(d.status is TaskStatus.COMPLETED for d in done)
        assert (await rt.wait("slow", timeout=30)).status is TaskStatus.STOPPED
        assert (await rt.wait("drip", timeout=30)).status is TaskStatus.PAUSED
        await rt.resume("drip")
        assert (await rt.wait("drip", timeout=30)).status is TaskStatus.COMPLETED
        for run in [*runs, slow, paused]:
            events = await rt.store.events_after(run.run_id, 0)
            assert [e.id for e in events] == list(range(1, len(events) + 1))
            assert events[-1].type is EventType.END
            steps = await rt.steps(run.run_id)
            keys = [(s.task_id, s.attempt) for s in steps]
            assert len(keys) == len(set(keys))  # each attempt recorded once
            step_events = [e for e in events if e.type is EventType.STEP]
            assert len(step_events) == len(steps)
        assert [s.step for s in await rt.steps("r0")] == [f"n{i}" for i in range(STEPS)]
