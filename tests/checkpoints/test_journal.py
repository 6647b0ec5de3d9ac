"""The write-failure journal: refused record writes wait on disk, then land in the store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers.store_records import create, write_lock_held

from checkpoints.journal import WriteJournal, journal_path
from checkpoints.sqlite import SqliteRunStore
from checkpoints.store import LogRecord, event_to_row, step_to_row
from graph_runtime.errors import StoreError
from graph_runtime.models import Event, EventType, TaskStepResult


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def records(run_id: str, i: int) -> dict[str, Any]:
    """Event i+2, step task-i, log i+2 (ids fixed, so a replay is idempotent)."""
    return {
        "events": [Event(run_id=run_id, id=i + 2, type=EventType.STEP, data={"i": i})],
        "steps": [TaskStepResult(step="node", task_id=f"task-{i}", result={"i": i})],
        "logs": [LogRecord(run_id=run_id, id=i + 2, level="info", message=f"step {i}")],
    }


def entry(run_id: str, i: int) -> dict[str, Any]:
    """The journal line of ``records(run_id, i)``."""
    rec = records(run_id, i)
    return {
        "run_id": run_id,
        "events": [event_to_row(e) for e in rec["events"]],
        "steps": [step_to_row(run_id, s) for s in rec["steps"]],
        "logs": [log.to_row() for log in rec["logs"]],
    }


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def counts(db: Path, run_id: str) -> tuple[int, int, int]:
    with closing(sqlite3.connect(db)) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
            for table in ("events", "steps", "logs")
        )


# -- the file -------------------------------------------------------------------------------


def test_entries_survive_a_reopen_and_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "x.journal.jsonl"
    journal = WriteJournal(path)
    journal.append(entry("r", 0))
    journal.append(entry("r", 1))
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = WriteJournal(path)
    assert [e["events"][0]["id"] for e, _ in again.snapshot()] == [2, 3]
    assert again.records == 6
    again.drop(1)
    again.close()
    assert [e["events"][0]["id"] for e, _ in WriteJournal(path).snapshot()] == [3]


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_clean(tmp_path: Path) -> None:
    path = tmp_path / "x.journal.jsonl"
    good = json.dumps(entry("r", 0))
    path.write_text(good + "\n" + good[: len(good) // 2])  # died while appending
    journal = WriteJournal(path)
    assert len(journal) == 1
    journal.append(entry("r", 1))
    journal.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["events"][0]["id"] for line in lines] == [2, 3]


def test_lines_that_are_not_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.journal.jsonl"
    path.write_text('[1, 2]\n{"run_id": 5}\nnot json\n' + json.dumps(entry("r", 0)) + "\n")
    assert [e["run_id"] for e, _ in WriteJournal(path).snapshot()] == ["r"]


def test_the_path_sits_beside_the_database(tmp_path: Path) -> None:
    assert journal_path(tmp_path / "runs.db") == tmp_path / "runs.db.journal.jsonl"


# -- the store ------------------------------------------------------------------------------


async def test_a_write_refused_for_a_held_lock_waits_in_the_journal_then_lands(db: Path) -> None:
    async with SqliteRunStore.open(db, busy_timeout_ms=50) as store:
        await create(store, "r")
        with write_lock_held(db) as release:
            call = asyncio.create_task(store.record("r", **records("r", 0)))
            await until(lambda: store.health().journaled)
            health = store.health()
            assert not health.writable and "locked" in (health.error or "")
            assert health.journaled == 3 and not health.ok
            assert journal_path(db).stat().st_size > 0
            await asyncio.sleep(0.1)
            assert not call.done()  # durable in the journal, not yet in the store
            release.set()
        await asyncio.wait_for(call, 10)  # the retry replays it on its own
        assert counts(db, "r") == (2, 1, 1)
        assert store.health().ok
        assert journal_path(db).read_bytes() == b""
    assert not journal_path(db).exists()  # an empty journal is removed on close


async def test_journaled_rows_go_in_before_later_writes(db: Path) -> None:
    async with SqliteRunStore.open(db, busy_timeout_ms=50) as store:
        await create(store, "r")
        with write_lock_held(db) as release:
            first = asyncio.create_task(store.record("r", **records("r", 0)))
            await until(lambda: store.health().journaled)
            release.set()
        await store.record("r", **records("r", 1))  # its transaction replays the journal first
        assert first.done() or await asyncio.wait_for(first, 5) is None
        steps = await store.steps("r")
        assert [s.task_id for s in steps] == ["task-0", "task-1"]
        assert [e.id for e in await store.events_after("r")] == [1, 2, 3]


async def test_a_journal_left_by_a_dead_process_is_replayed_at_open_once(db: Path) -> None:
    async with SqliteRunStore.open(db) as store:
        await create(store, "r")
        await store.record("r", **records("r", 0))  # also in the journal: a cut replay
    journal = WriteJournal(journal_path(db))
    for i in range(3):
        journal.append(entry("r", i))
    journal.append(entry("gone", 9))  # its run was deleted meanwhile
    journal.close()
    async with SqliteRunStore.open(db) as store:
        await store.probe()
        assert store.health().ok
        assert counts(db, "r") == (4, 3, 3)  # nothing twice
        assert counts(db, "gone") == (0, 0, 0)


async def test_a_read_only_database_fails_the_probe_with_the_reason(db: Path) -> None:
    async with SqliteRunStore.open(db) as store:
        store._writer.run_outside_transaction(lambda c: c.execute("PRAGMA query_only = 1"))
        with pytest.raises(StoreError) as info:
            await store.probe()
        assert "readonly" in str(info.value.__cause__)
        assert not store.health().writable
        store._writer.run_outside_transaction(lambda c: c.execute("PRAGMA query_only = 0"))
        await store.probe()
        assert store.health().ok
