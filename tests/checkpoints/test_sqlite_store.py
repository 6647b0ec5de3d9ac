"""SQLite-specific behaviour of the run store: WAL, the process lock, migrations, group commit."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from helpers.store_records import create, write_lock_held

from checkpoints import migrate as migrate_module
from checkpoints.migrate import CREATE_MIGRATIONS_TABLE, Migration, load_migrations, migrate
from checkpoints.sqlite import SqliteRunStore
from checkpoints.store import LogRecord
from graph_runtime.errors import RunNotFound, StoreError
from graph_runtime.models import ErrorCode, Event, EventType, TaskStepResult

EXPECTED_SCHEMA = {
    ("table", "graph_runtime_migrations"),
    ("table", "workflows"),
    ("index", "sqlite_autoindex_workflows_1"),
    ("table", "runs"),
    ("index", "sqlite_autoindex_runs_1"),
    ("index", "runs_status_priority_created"),
    ("index", "runs_created"),
    ("index", "runs_workflow_created"),
    ("table", "events"),
    ("index", "sqlite_autoindex_events_1"),
    ("table", "steps"),
    ("index", "steps_run_task_attempt"),
    ("index", "steps_untasked_seq"),
    ("index", "steps_run_event"),
    ("table", "logs"),
    ("index", "logs_run_id"),
    ("table", "threads"),
    ("index", "sqlite_autoindex_threads_1"),
    ("index", "threads_created"),
    ("index", "runs_thread_created"),
    ("table", "graph_runtime_write_probe"),
}

# Runs in a subprocess: open the store, record a step, report, then wait to be killed.
HOLDER = """
import asyncio, sys
from checkpoints.sqlite import SqliteRunStore
from checkpoints.store import RunRecord
from graph_runtime.models import Event, EventType, TaskStatus, TaskStepResult, utcnow

async def main():
    store = await SqliteRunStore.connect(sys.argv[1])
    now = utcnow()
    run = RunRecord(run_id="held", workflow_id="wf", workflow_version=None, thread_id="t",
                    status=TaskStatus.PENDING, priority=5, input={}, created_at=now, updated_at=now)
    await store.create_run(run, Event(run_id="held", id=1, type=EventType.STATUS))
    await store.record("held", steps=[TaskStepResult(step="a", task_id="t1")])
    print("ready", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""
# Runs in a subprocess: try to open the store and print the error.
OPENER = """
import asyncio, sys
from checkpoints.sqlite import SqliteRunStore
from graph_runtime.errors import StoreError

async def main():
    try:
        await SqliteRunStore.connect(sys.argv[1])
    except StoreError as exc:
        print(exc.code.value, exc.message)
        sys.exit(3)

asyncio.run(main())
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "runs.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqliteRunStore]:
    async with SqliteRunStore.open(db) as opened:
        yield opened


def record_kwargs(run_id: str, i: int) -> dict[str, Any]:
    return {
        "events": [Event(run_id=run_id, id=i + 2, type=EventType.STEP, data={"i": i})],
        "steps": [TaskStepResult(step="node", task_id=f"task-{i}", result={"i": i})],
        "logs": [LogRecord(run_id=run_id, level="info", message=f"step {i}")],
    }


def first_value(conn: sqlite3.Connection | None, query: str) -> Any:
    assert conn is not None
    return conn.execute(query).fetchone()[0]


def schema(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    conn.close()
    return {(str(t), str(n)) for t, n in rows}


# -- connections ------------------------------------------------------------------------


async def test_writer_is_wal_with_the_asked_pragmas(store: SqliteRunStore, db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    for pragma, value in [
        ("PRAGMA synchronous", 1),
        ("PRAGMA foreign_keys", 1),
        # The group-commit writer waits for the lock itself (and never on the loop).
        ("PRAGMA busy_timeout", 0),
    ]:
        assert first_value(store._own_connection, pragma) == value
    assert store._writer._busy_timeout == 5.0 and not store.shares_writer
    assert first_value(store._reader, "PRAGMA busy_timeout") == 5000
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store._reader.execute("DELETE FROM runs")  # the reader is query_only


async def test_synchronous_full_is_available(tmp_path: Path) -> None:
    async with SqliteRunStore.open(tmp_path / "full.db", synchronous="FULL") as full:
        assert first_value(full._own_connection, "PRAGMA synchronous") == 2
        assert full._writer._mode == "thread"  # fsyncs stay off the event loop
        await create(full, "r")
        await full.record("r", **record_kwargs("r", 0))
        assert len(await full.steps("r")) == 1


async def test_reads_do_not_wait_for_a_held_write_lock(store: SqliteRunStore, db: Path) -> None:
    await create(store, "r")
    with write_lock_held(db) as release:
        pending = asyncio.create_task(store.record("r", **record_kwargs("r", 0)))
        started = time.perf_counter()
        assert (await store.get_run("r")).run_id == "r"
        assert time.perf_counter() - started < 1.0
        await asyncio.sleep(0.05)
        assert not pending.done()  # the write waits (busy_timeout) for the other writer
        release.set()
        await asyncio.wait_for(pending, 5)
    assert len(await store.steps("r")) == 1


async def test_without_a_journal_a_lock_timeout_is_a_store_error_and_the_store_recovers(
    tmp_path: Path,
) -> None:
    db = tmp_path / "busy.db"
    async with SqliteRunStore.open(db, busy_timeout_ms=50, journal=False) as store:
        await create(store, "r")
        with write_lock_held(db):
            with pytest.raises(StoreError) as info:
                await store.record("r", **record_kwargs("r", 0))
        assert info.value.code is ErrorCode.DATABASE_ERROR
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        await store.record("r", **record_kwargs("r", 0))
        assert len(await store.steps("r")) == 1


async def test_a_cancelled_caller_still_gets_its_record_committed(
    store: SqliteRunStore, db: Path
) -> None:
    await create(store, "r")
    with write_lock_held(db) as release:
        call = asyncio.create_task(store.record("r", **record_kwargs("r", 0)))
        await asyncio.sleep(0.05)
        call.cancel()
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    await store.update_run("r", progress=0.5)  # queued behind it, so it committed before
    assert len(await store.steps("r")) == 1


# -- the process lock -------------------------------------------------------------------


async def test_process_lock_refuses_a_second_process_until_the_holder_dies(db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(db), stdout=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 20) == b"ready\n"
        message = f"another graph-runtime process is using {db}; stop it or use another --db"
        opener = await asyncio.create_subprocess_exec(
            sys.executable, "-c", OPENER, str(db), stdout=asyncio.subprocess.PIPE, env=env
        )
        out, _ = await asyncio.wait_for(opener.communicate(), 20)
        assert opener.returncode == 3
        assert out.decode().strip() == f"E006 {message}"
        with pytest.raises(StoreError) as info:  # the same holds within one process
            await SqliteRunStore.connect(db)
        assert info.value.message == message
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    assert holder.returncode == -signal.SIGKILL
    async with SqliteRunStore.open(db) as store:  # the kernel dropped the dead holder's lock
        assert [s.task_id for s in await store.steps("held")] == ["t1"]  # committed = kept


async def test_lock_false_skips_the_lock(db: Path) -> None:
    async with SqliteRunStore.open(db), SqliteRunStore.open(db, lock=False) as second:
        assert await second.list_runs() == []


async def test_resaving_an_unchanged_workflow_reads_nothing(db: Path) -> None:
    async with SqliteRunStore.open(db) as store:
        v1 = await store.put_workflow("wf", {"n": 1}, "h1")
        reads: list[str] = []
        store._reader.set_trace_callback(reads.append)
        again = await store.put_workflow("wf", {"n": 1}, "h1")
        assert (again.version, again.created_at) == (v1.version, v1.created_at) and reads == []
        v2 = await store.put_workflow("wf", {"n": 2}, "h2")
        assert v2.version == 2 and (await store.put_workflow("wf", {"n": 2}, "h2")).version == 2
        assert (await store.put_workflow("wf", {"n": 1}, "h1")).version == 3
        store._reader.set_trace_callback(None)
    async with SqliteRunStore.open(db) as store:  # a new process reads the latest once
        assert (await store.put_workflow("wf", {"n": 1}, "h1")).version == 3


# -- migrations -------------------------------------------------------------------------


async def test_migrations_make_the_expected_schema_and_leave_other_tables(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:  # the checkpointer's tables, already in the file
        conn.execute("CREATE TABLE lg_checkpoints (x)")
        conn.execute("INSERT INTO lg_checkpoints VALUES (1)")
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    async with SqliteRunStore.open(db):
        pass
    assert schema(db) == EXPECTED_SCHEMA | {("table", "lg_checkpoints")}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT x FROM lg_checkpoints").fetchall() == [(1,)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
        applied = conn.execute("SELECT version, name FROM graph_runtime_migrations").fetchall()
    conn.close()
    assert applied == [
        (1, "0001_init.sql"),
        (2, "0002_threads.sql"),
        (3, "0003_write_probe.sql"),
        (4, "0004_steps_one_index.sql"),
        (5, "0005_step_events_in_steps.sql"),
    ]


async def test_steps_and_events_recorded_before_0004_read_the_same_after_it(db: Path) -> None:
    # A database at version 3, with a run and its steps (tasked and untasked).
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for migration in load_migrations()[:3]:
            conn.execute("BEGIN")
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute("COMMIT")
        conn.execute(CREATE_MIGRATIONS_TABLE)
        for m in load_migrations()[:3]:
            conn.execute(
                "INSERT INTO graph_runtime_migrations VALUES (?, ?, ?, 'x')",
                (m.version, m.name, m.checksum),
            )
        conn.execute(
            "INSERT INTO runs (run_id, workflow_id, thread_id, status, priority, input,"
            " created_at, updated_at) VALUES ('r', 'w', 'r', 'running', 5, '{}', 'x', 'x')"
        )
        for seq, task in ((1, "t1"), (2, None), (3, "t2")):
            conn.execute(
                "INSERT INTO steps (run_id, seq, task_id, attempt, step, status, completed,"
                " message) VALUES ('r', ?, ?, 1, 's', 'completed', 1, 'm')",
                (seq, task),
            )
        for event_id, kind in ((1, "status"), (2, "step"), (3, "log")):
            conn.execute(
                "INSERT INTO events (run_id, id, type, data, created_at)"
                " VALUES ('r', ?, ?, '{\"n\": 1}', '2026-01-02T03:04:05.000000+00:00')",
                (event_id, kind),
            )
    finally:
        conn.close()
    async with SqliteRunStore.open(db) as store:
        # The events of steps recorded before 0005 are read from the events table as before.
        events = await store.events_after("r")
        assert [(e.id, e.type.value, e.data) for e in events] == [
            (1, "status", {"n": 1}),
            (2, "step", {"n": 1}),
            (3, "log", {"n": 1}),
        ]
        assert await store.last_event_id("r") == 3
        assert [(s.seq, s.task_id) for s in await store.steps("r")] == [
            (1, "t1"),
            (2, None),
            (3, "t2"),
        ]
        assert await store.step_keys("r") == {("t1", 1), ("t2", 1)}
        assert await store.last_step_seq("r") == 3
        # The same keys are still refused: a replayed task attempt, a taken untasked seq.
        await store.record(
            "r",
            steps=[
                TaskStepResult(step="again", task_id="t1", attempt=1, seq=9),
                TaskStepResult(step="again", seq=2),
                TaskStepResult(step="new", task_id="t1", attempt=2, seq=4),
            ],
        )
        assert [(s.seq, s.step) for s in await store.steps("r")] == [
            (1, "s"),
            (2, "s"),
            (3, "s"),
            (4, "new"),
        ]
    assert schema(db) == EXPECTED_SCHEMA


async def test_rerunning_migrate_is_a_no_op(db: Path) -> None:
    async with SqliteRunStore.open(db):
        pass
    before = schema(db)
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        assert migrate(conn) == []
    async with SqliteRunStore.open(db):
        pass
    assert schema(db) == before
    with closing(sqlite3.connect(db)) as conn:  # the default isolation level is refused
        with pytest.raises(ValueError, match="isolation_level"):
            migrate(conn)


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        ("UPDATE graph_runtime_migrations SET checksum = 'x'", "edited after it was applied"),
        (
            "INSERT INTO graph_runtime_migrations VALUES (9999, '9999_future.sql', 'x', 'now')",
            "upgrade graph-runtime",
        ),
    ],
)
async def test_edited_or_unknown_migrations_stop_the_start(
    db: Path, tamper: str, match: str
) -> None:
    async with SqliteRunStore.open(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(tamper)
    conn.close()
    for _ in range(2):  # the same error twice: a failed open releases the process lock
        with pytest.raises(StoreError, match=match):
            await SqliteRunStore.connect(db)


async def test_a_failing_migration_is_rolled_back_whole(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Migration(version=1, name="0001_broken.sql", sql="CREATE TABLE a (x);\nNOT SQL;\n")
    monkeypatch.setattr(migrate_module, "load_migrations", lambda dialect="sqlite": [broken])
    with pytest.raises(StoreError, match=r"0001_broken\.sql"):
        await SqliteRunStore.connect(db)
    assert schema(db) == {("table", "graph_runtime_migrations")}


def test_shipped_migrations_are_numbered_from_one_and_split_cleanly() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for migration in migrations:
        statements = migration.statements()
        assert statements and all(sqlite3.complete_statement(s) for s in statements)


# -- group commit -----------------------------------------------------------------------


async def test_group_commit_batches_concurrent_records(store: SqliteRunStore) -> None:
    runs = [f"run-{i}" for i in range(10)]
    for run_id in runs:
        await create(store, run_id)
    before = store.stats.transactions
    calls = [store.record(r, **record_kwargs(r, i)) for i in range(20) for r in runs]
    await asyncio.gather(*calls)
    used = store.stats.transactions - before
    print(f"\ngroup commit: {len(calls)} concurrent record() calls in {used} transaction(s)")
    assert used < len(calls)
    for run_id in runs:
        assert len(await store.steps(run_id)) == 20
        assert await store.last_event_id(run_id) == 21
        assert len(await store.logs(run_id, limit=100)) == 20


async def test_group_commit_throughput(store: SqliteRunStore) -> None:
    """Not a benchmark (see bench/): a rough number, printed under ``pytest -s``."""
    runs = [f"run-{i}" for i in range(20)]
    for run_id in runs:
        await create(store, run_id)
    sequential = 300
    started = time.perf_counter()
    for i in range(sequential):
        await store.record(runs[0], **record_kwargs(runs[0], i))
    one_by_one = sequential / (time.perf_counter() - started)
    before, calls = store.stats.transactions, 3000
    started = time.perf_counter()
    await asyncio.gather(
        *(store.record(r, **record_kwargs(r, 1000 + i)) for i in range(calls // 20) for r in runs)
    )
    grouped = calls / (time.perf_counter() - started)
    used = store.stats.transactions - before
    print(
        f"\nrecord() throughput (1 event + 1 step + 1 log each): sequential {one_by_one:,.0f}/s "
        f"(1 transaction each); {calls} concurrent {grouped:,.0f}/s in {used} transactions"
    )
    assert len(await store.steps(runs[1])) == calls // 20


async def test_an_urgent_record_of_a_lone_run_commits_before_record_nowait_returns(
    store: SqliteRunStore,
) -> None:
    await create(store, "r")
    await store.record("r", **record_kwargs("r", 0))  # the last commit is this run's
    done: list[BaseException | None] = []
    pending = store.record_nowait("r", **record_kwargs("r", 1), urgent=True, on_done=done.append)
    assert pending.done() and done == [None]  # committed on the loop, no turn of it needed
    assert len(await store.steps("r")) == 2


async def test_an_urgent_record_joins_the_batch_when_another_run_is_queued(
    store: SqliteRunStore,
) -> None:
    for run_id in ("a", "b"):
        await create(store, run_id)
    other = store.record_nowait("a", **record_kwargs("a", 0))
    before = store.stats.transactions
    mine = store.record_nowait("b", **record_kwargs("b", 0), urgent=True)
    assert not mine.done()  # concurrent runs share a commit instead
    await asyncio.gather(other, mine)
    assert store.stats.transactions - before == 1


async def test_a_failing_record_in_a_batch_fails_alone_and_leaves_no_row(
    store: SqliteRunStore,
) -> None:
    await create(store, "r")
    good = store.record_nowait("r", **record_kwargs("r", 0))
    # Record writes have no savepoint of their own: the ghost's failure rolls the shared
    # batch back, and the writer runs each write again in a transaction of its own.
    ghost = store.record_nowait("ghost", **record_kwargs("ghost", 0))
    after = store.record_nowait("r", **record_kwargs("r", 1))
    with pytest.raises(RunNotFound):
        await ghost
    await asyncio.gather(good, after)
    assert len(await store.steps("r")) == 2
    assert await store.events_after("ghost") == []
    assert await store.steps("ghost") == []


async def test_an_empty_journal_costs_a_commit_no_statement(store: SqliteRunStore) -> None:
    await create(store, "r")
    statements: list[str] = []
    conn = store._own_connection
    assert conn is not None
    conn.set_trace_callback(statements.append)
    try:
        await store.record("r", **record_kwargs("r", 0))
    finally:
        conn.set_trace_callback(None)
    assert not any("writer_prelude" in s or "run_store_job" in s for s in statements)
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
