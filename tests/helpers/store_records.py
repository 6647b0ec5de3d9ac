"""Runs and locks the run-store tests share."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from checkpoints.store import RunRecord, RunStore
from graph_runtime.models import Event, EventType, TaskStatus, utcnow

__all__ = ["create", "make_run", "write_lock_held"]


def make_run(run_id: str) -> RunRecord:
    """A pending run on its own thread."""
    now = utcnow()
    return RunRecord(
        run_id=run_id,
        workflow_id="wf",
        workflow_version=None,
        thread_id=run_id,
        status=TaskStatus.PENDING,
        priority=5,
        input={},
        created_at=now,
        updated_at=now,
    )


async def create(store: RunStore, run_id: str) -> None:
    """Store ``make_run(run_id)`` with its first status event."""
    await store.create_run(make_run(run_id), Event(run_id=run_id, id=1, type=EventType.STATUS))


@contextmanager
def write_lock_held(db: Path) -> Iterator[threading.Event]:
    """Another connection (think: another process) holds the write lock until the event is set."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(10)
            conn.execute("COMMIT")

    thread = threading.Thread(target=hold, name="hold-write-lock")
    thread.start()
    assert held.wait(5)
    try:
        yield release
    finally:
        release.set()
        thread.join(5)
