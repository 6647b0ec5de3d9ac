"""Transaction bodies of the SQLite run store: plain functions of a ``sqlite3`` connection.

Each write of :class:`checkpoints.sqlite.SqliteRunStore` is one *job* submitted to a
:class:`~checkpoints._sqlite_writer.GroupCommitWriter`: the store's own, or the one of the
``FastSqliteSaver`` it shares the database with, so that a superstep's step records commit
in the same transaction as its checkpoint. A job runs inside whatever transaction the writer
has open, next to other jobs and checkpoint writes, so :func:`job` wraps its body in a
savepoint and turns an exception into a :class:`Failed` result: one bad job rolls back its
own rows and fails alone, and never aborts the batch it shares. Only when SQLite itself
ended the transaction (I/O error, disk full) does the exception escape, and the writer then
fails or retries the batch. Record writes (``RecordWrite``) skip the savepoint: they
only insert rows and nearly never fail, and when one does, the writer retries its batch one
operation per transaction, so it still fails alone.

The bodies only touch the connection and their prepared arguments: with a thread-mode
writer they run on the writer thread.
"""

from __future__ import annotations

import dataclasses
import operator
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

from checkpoints import _sqlite_store_sql as sql
from checkpoints._sqlite_faults import is_storage_fault
from checkpoints._sqlite_writer import WriteFn
from checkpoints.store import (
    LogRecord,
    RunRecord,
    RunRow,
    StoredWorkflow,
    dt_to_db,
    run_column_changes,
)
from checkpoints.threads import THREAD_FIELDS, ThreadRecord, ThreadRow
from graph_runtime.errors import ConflictError, InvalidTransition, RunNotFound, StoreError
from graph_runtime.models import Event, TaskStatus, TaskStepResult, utcnow
from graph_runtime.state_machine import check_transition

__all__ = [
    "Failed",
    "check_run_id",
    "create_run",
    "create_thread",
    "delete_run",
    "delete_thread",
    "fetch_one",
    "insert_records",
    "job",
    "job_error",
    "put_workflow",
    "store_error",
    "transition",
    "update_run",
    "update_thread",
    "write_probe",
]

_T = TypeVar("_T")
Row = dict[str, Any]

_step_params = operator.itemgetter(*sql.STEP_COLUMNS)
"""A steps row's values in INSERT_STEP's parameter order."""


class Failed:
    """The result of a job whose body raised; the caller re-raises ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def job(body: Callable[[sqlite3.Connection], _T], run_id: str = "") -> WriteFn:
    """Wrap ``body`` in a savepoint; an exception becomes a :class:`Failed` result.

    Args:
        body: The job's statements.
        run_id: The run the job writes for (maps a foreign-key failure to ``RunNotFound``).
    """

    def run(conn: sqlite3.Connection) -> _T | Failed:
        conn.execute(sql.SAVEPOINT_JOB)
        try:
            result = body(conn)
        except Exception as exc:
            if not conn.in_transaction or is_storage_fault(exc):
                # SQLite rolled the whole transaction back, or the database refuses writes
                # (locked, full, read-only): the writer fails the batch as a whole.
                raise
            conn.execute(sql.ROLLBACK_TO_JOB)
            conn.execute(sql.RELEASE_JOB)
            return Failed(job_error(exc, run_id))
        conn.execute(sql.RELEASE_JOB)
        return result

    return run


def fetch_one(
    conn: sqlite3.Connection, statement: LiteralString, params: tuple[Any, ...] | Mapping[str, Any]
) -> Row | None:
    """The first row as a dict (the shared writer connection returns plain tuples)."""
    cursor = conn.execute(statement, params)
    try:
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cursor.description], row, strict=True))
    finally:
        cursor.close()  # resets the statement now rather than whenever it is collected


def put_workflow(
    conn: sqlite3.Connection, workflow_id: str, definition: str, content_hash: str
) -> StoredWorkflow:
    """Store a new version, or return the latest when its hash is the same."""
    # Inside the write transaction, so two puts cannot both take version max+1.
    latest = fetch_one(conn, sql.SELECT_WORKFLOW_LATEST, (workflow_id,))
    if latest is not None and latest["content_hash"] == content_hash:
        return StoredWorkflow.from_row(latest)
    new: Row = dict(
        workflow_id=workflow_id,
        definition=definition,
        content_hash=content_hash,
        version=latest["version"] + 1 if latest is not None else 1,
        created_at=dt_to_db(utcnow()),
    )
    conn.execute(sql.INSERT_WORKFLOW, new)
    return StoredWorkflow.from_row(new)


def load_run(conn: sqlite3.Connection, run_id: str) -> RunRecord:
    """The run, read inside the write transaction; ``RunNotFound``."""
    row = fetch_one(conn, sql.SELECT_RUN, (run_id,))
    if row is None:
        raise RunNotFound(f"no run {run_id!r}")
    return RunRecord.from_row(row)


def _insert_event(conn: sqlite3.Connection, row: Row, *, new_run: bool = False) -> None:
    taken = f"event {row['id']} of run {row['run_id']!r} already exists"
    # A step's event is stored in its steps row (see 0005_step_events_in_steps.sql). A run
    # inserted in this transaction has no steps yet.
    if (
        not new_run
        and conn.execute(sql.SELECT_STEP_EVENT, (row["run_id"], row["id"])).fetchone() is not None
    ):
        raise ConflictError(taken)
    try:
        conn.execute(sql.INSERT_EVENT, row)
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" not in str(exc):
            raise
        raise ConflictError(taken) from exc


def create_run(
    conn: sqlite3.Connection, row: RunRow, event_rows: list[Row]
) -> tuple[RunRecord, bool]:
    """Insert the run and its first events; ``(existing, False)`` when the id is taken."""
    cursor = conn.execute(sql.INSERT_RUN, row)
    if cursor.rowcount == 0:
        # The id is an idempotency key: a repeated create returns the first run and writes
        # nothing. Jobs run one at a time on the writer connection, so exactly one wins.
        return load_run(conn, row["run_id"]), False
    for event_row in event_rows:
        _insert_event(conn, event_row, new_run=True)
    return RunRecord.from_row(row), True


def transition(
    conn: sqlite3.Connection,
    run_id: str,
    new: TaskStatus,
    allowed: Collection[TaskStatus] | None,
    fields: Mapping[str, Any],
    event_rows: list[Row],
) -> RunRecord:
    """Compare-and-set the status, update ``fields``, insert the status event (and more)."""
    # Read and write in the same write transaction: nothing can change the status between
    # the check and the update (compare-and-set). Only the changed columns are written:
    # the run's input and metadata are neither decoded nor encoded again.
    row = fetch_one(conn, sql.SELECT_RUN_STATUS, (run_id,))
    if row is None:
        raise RunNotFound(f"no run {run_id!r}")
    status = TaskStatus(row["status"])
    if allowed is not None and status not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise InvalidTransition(status, new, f"the run is {status.value}, not {wanted}")
    check_transition(status, new)
    columns = run_column_changes(
        fields, now=utcnow(), new_status=new, first_start=row["started_at"] is None
    )
    statement = _update_run_sql(columns, returning=True)
    updated = fetch_one(conn, statement, {**columns, "run_id": run_id})
    assert updated is not None  # read in this transaction
    for event_row in event_rows:
        _insert_event(conn, event_row)
    return RunRecord.from_row(updated)


def update_run(conn: sqlite3.Connection, run_id: str, fields: Mapping[str, Any]) -> None:
    """Change fields other than the status."""
    columns = run_column_changes(fields, now=utcnow())
    statement = _update_run_sql(columns, returning=False)
    if conn.execute(statement, {**columns, "run_id": run_id}).rowcount == 0:
        raise RunNotFound(f"no run {run_id!r}")


_UPDATE_RUN_STATEMENTS: dict[tuple[tuple[str, ...], bool], LiteralString] = {}


def _update_run_sql(columns: Mapping[str, Any], *, returning: bool) -> LiteralString:
    key = (tuple(sorted(columns)), returning)
    statement = _UPDATE_RUN_STATEMENTS.get(key)
    if statement is None:
        # The column names come from run_column_changes, which knows every column and
        # refuses any other name: no caller's text reaches the SQL.
        assignments = ", ".join(f"{name} = :{name}" for name in key[0])
        text = f"UPDATE runs SET {assignments} WHERE run_id = :run_id"
        statement = text + (" RETURNING *" if returning else "")
        _UPDATE_RUN_STATEMENTS[key] = statement
    return statement


def delete_run(conn: sqlite3.Connection, run_id: str) -> None:
    """Delete the run; foreign keys (ON DELETE CASCADE) take its steps, logs and events."""
    if conn.execute(sql.DELETE_RUN, (run_id,)).rowcount == 0:
        raise RunNotFound(f"no run {run_id!r}")


def create_thread(conn: sqlite3.Connection, row: ThreadRow) -> tuple[ThreadRecord, bool]:
    """Insert a thread; ``(existing, False)`` when the id is taken."""
    if conn.execute(sql.INSERT_THREAD, row).rowcount == 0:
        existing = fetch_one(conn, sql.SELECT_THREAD, (row["thread_id"],))
        assert existing is not None  # the insert conflicted with it, in this transaction
        return ThreadRecord.from_row(existing), False
    return ThreadRecord.from_row(row), True


def update_thread(
    conn: sqlite3.Connection, thread_id: str, fields: Mapping[str, Any]
) -> ThreadRecord | None:
    """Change a thread's fields; None when there is no such thread."""
    refused = set(fields) - THREAD_FIELDS
    if refused:
        raise TypeError(f"these thread fields cannot be set: {sorted(refused)}")
    # Read and write in one write transaction: concurrent updates do not lose each other.
    row = fetch_one(conn, sql.SELECT_THREAD, (thread_id,))
    if row is None:
        return None
    current = ThreadRecord.from_row(row)
    updated = dataclasses.replace(current, updated_at=utcnow(), **fields)
    conn.execute(sql.UPDATE_THREAD, updated.to_row())
    return updated


def delete_thread(conn: sqlite3.Connection, thread_id: str) -> bool:
    """Delete a thread's record; False when there was none."""
    return bool(conn.execute(sql.DELETE_THREAD, (thread_id,)).rowcount)


def insert_records(
    conn: sqlite3.Connection, events: list[Row], steps: list[Row], logs: list[Row]
) -> None:
    """The rows of one ``record()`` call; a replayed row is skipped (idempotency keys)."""
    if events:
        conn.executemany(sql.INSERT_EVENT_IDEMPOTENT, events)
    if steps:
        conn.executemany(sql.INSERT_STEP, map(_step_params, steps))
    if logs:
        conn.executemany(sql.INSERT_LOG, logs)


_PROBE_BYTES = 65536


def write_probe(conn: sqlite3.Connection) -> None:
    """Write 64 KiB and take it back: fails as a real write would (full, read-only, locked)."""
    conn.execute("SAVEPOINT write_probe")
    try:
        conn.execute(
            "INSERT INTO graph_runtime_write_probe (pad) VALUES (zeroblob(?))", (_PROBE_BYTES,)
        )
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO write_probe")
            conn.execute("RELEASE write_probe")


def store_error(exc: BaseException) -> StoreError:
    """A database failure as the E006 ``StoreError``, with the cause attached."""
    error = StoreError(f"writing to the run store failed: {exc}")
    error.__cause__ = exc
    return error


def job_error(exc: Exception, run_id: str = "") -> BaseException:
    """What the caller of a failed job raises."""
    if not isinstance(exc, sqlite3.Error):
        return exc  # a domain error (InvalidTransition, RunNotFound...) or a caller's bug
    if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc) and run_id:
        error = RunNotFound(f"no run {run_id!r}")
        error.__cause__ = exc
        return error
    return store_error(exc)


def check_run_id(run_id: str, records: Sequence[Event | TaskStepResult | LogRecord]) -> None:
    """Refuse records of another run (``ValueError``)."""
    for rec in records:
        if rec.run_id is not None and rec.run_id != run_id:
            raise ValueError(f"a record of run {rec.run_id!r} was given for run {run_id!r}")
