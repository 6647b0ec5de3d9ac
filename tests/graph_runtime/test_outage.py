"""Storage outages in process: the database refuses writes mid-run, then takes them again.

Each run is compared with the same workflow's fault-free run: the same result, one completed
step record per task, event ids 1..n with one ``end``, and the run never failed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers.workflows import chain

from checkpoints.journal import journal_path
from graph_runtime import Runtime
from graph_runtime.config import RuntimeConfig
from graph_runtime.models import EventType, TaskStatus

WORKFLOW = chain("outage", 4, seconds=0.15)
CONFIG = RuntimeConfig(busy_timeout_seconds=0.2, storage_retry_seconds=0.2)

Fault = Callable[[sqlite3.Connection, bool], None]


def read_only(conn: sqlite3.Connection, on: bool) -> None:
    conn.execute(f"PRAGMA query_only = {int(on)}")


def disk_full(conn: sqlite3.Connection, on: bool) -> None:
    pages = conn.execute("PRAGMA page_count").fetchone()[0] if on else 4294967294
    conn.execute(f"PRAGMA max_page_count = {pages}").fetchall()


async def run_once(rt: Runtime) -> tuple[str, list[Any]]:
    events = [event async for event in rt.stream(WORKFLOW, {})]
    return events[0].run_id, events


async def check(rt: Runtime, run_id: str, streamed: list[Any], oracle: Any) -> None:
    record = await rt.store.get_run(run_id)
    assert record.status is TaskStatus.COMPLETED, record.error
    assert record.result == oracle
    steps = await rt.store.steps(run_id)
    done = Counter(s.task_id for s in steps if s.completed)
    assert set(done.values()) == {1}, done
    assert len(done) == 10  # start, 4 x (wait, transform), out
    stored = await rt.store.events_after(run_id)
    assert [e.id for e in stored] == list(range(1, len(stored) + 1))
    assert [e.type for e in stored].count(EventType.END) == 1
    assert stored[-1].type is EventType.END
    # A live follower saw exactly what the store holds, in order.
    assert [e.id for e in streamed] == [e.id for e in stored]
    statuses = [e.data["new"] for e in stored if e.type is EventType.STATUS]
    assert statuses == ["pending", "running", "completed"]
    assert rt.store.health().ok


async def test_a_lock_held_past_the_busy_timeout_delays_the_run_without_failing_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, config=CONFIG) as rt:
        _, oracle_events = await run_once(rt)
        oracle = (await rt.store.get_run(oracle_events[0].run_id)).result
        release, held = threading.Event(), threading.Event()

        def hog() -> None:
            time.sleep(0.3)
            with closing(sqlite3.connect(db, isolation_level=None)) as conn:
                conn.execute("BEGIN IMMEDIATE")
                held.set()
                release.wait(10)
                conn.execute("COMMIT")

        thread = threading.Thread(target=hog)
        thread.start()
        try:
            follow = asyncio.create_task(run_once(rt))
            await asyncio.to_thread(held.wait, 5)
            await asyncio.sleep(0.8)  # well past the 0.2 s busy timeout
            assert not follow.done()
            # Reads go on while the write lock is held elsewhere.
            assert len(await rt.store.list_runs(status=[TaskStatus.RUNNING])) == 1
        finally:
            release.set()
            thread.join(5)
        run_id, streamed = await asyncio.wait_for(follow, 30)
        await check(rt, run_id, streamed, oracle)


@pytest.mark.parametrize("fault", [read_only, disk_full], ids=["read-only", "disk-full"])
async def test_a_database_that_refuses_writes_mid_run_holds_the_run_until_it_recovers(
    tmp_path: Path, fault: Fault
) -> None:
    db = tmp_path / "runs.db"
    async with Runtime(db, config=CONFIG) as rt:
        _, oracle_events = await run_once(rt)
        oracle = (await rt.store.get_run(oracle_events[0].run_id)).result
        writer = rt.store._writer  # type: ignore[attr-defined]
        follow = asyncio.create_task(run_once(rt))
        await asyncio.sleep(0.4)  # mid-run
        writer.run_outside_transaction(lambda conn: fault(conn, True))
        try:
            async with asyncio.timeout(10):
                while rt.store.health().writable:
                    await asyncio.sleep(0.02)
            health = rt.store.health()
            assert health.error and ("readonly" in health.error or "full" in health.error)
            await asyncio.sleep(0.5)
            assert not follow.done()
        finally:
            writer.run_outside_transaction(lambda conn: fault(conn, False))
        run_id, streamed = await asyncio.wait_for(follow, 30)
        await check(rt, run_id, streamed, oracle)
    assert not journal_path(db).exists()
