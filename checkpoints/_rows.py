"""Row mapping shared by the run store backends.

JSON and timestamp columns, log levels, and the ``events`` and ``steps`` rows. The public
names are re-exported by :mod:`checkpoints.store`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, TaskStepResult

__all__ = [
    "LOG_LEVELS",
    "NO_ROWS",
    "RecordRows",
    "canonical_level",
    "dt_from_db",
    "dt_required",
    "dt_to_db",
    "event_from_row",
    "event_to_row",
    "json_dumps",
    "json_loads",
    "log_level_no",
    "record_rows",
    "step_event_from_row",
    "step_from_row",
    "step_row",
    "step_to_row",
    "step_view_and_row",
    "step_view_of",
]

Row = dict[str, Any]


class RecordRows(NamedTuple):
    """The rows of one write of a run's records: ``events``, ``steps`` and ``logs`` rows."""

    events: list[Row]
    steps: list[Row]
    logs: list[Row]

    def __bool__(self) -> bool:
        return bool(self.events or self.steps or self.logs)


NO_ROWS = RecordRows([], [], [])
"""Nothing to write (a barrier: it commits once everything queued before it did)."""

#: Log level name → number (the ``logging`` numbers); ``logs(level=...)`` is a minimum.
# Canonical names come first: canonical_level() picks the first name of a number.
LOG_LEVELS: dict[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "warn": 30,
    "error": 40,
    "critical": 50,
    "fatal": 50,
}


def canonical_level(level: str) -> str:
    """The canonical lowercase name of a level (``WARN`` → ``warning``); ``ValueError``."""
    number = log_level_no(level)
    return next(name for name, no in LOG_LEVELS.items() if no == number)


def log_level_no(level: str) -> int:
    """The number of a level name (case-insensitive); ``ValueError`` for unknown names."""
    try:
        return LOG_LEVELS[level.lower()]
    except KeyError:
        known = ", ".join(sorted(LOG_LEVELS))
        raise ValueError(f"unknown log level {level!r}; use one of {known}") from None


# One encoder for every call: json.dumps with options builds a new encoder each time.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":"))
# orjson writes the same text several times faster. Datetimes and dataclasses go to
# ``default`` (str) as with the standard library; an enum is stored as its value.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_dumps(value: Any) -> str:
    """JSON text for a column; objects JSON cannot encode are stored as ``str(obj)``.

    What orjson refuses (integers past 64 bits, keys that are not strings) goes through the
    standard library; a float NaN or infinity becomes ``null``, as JSON has no such value.
    """
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return _ENCODER.encode(value)


def json_loads(value: Any) -> Any:
    """Decode a JSON column (text from SQLite; Postgres ``jsonb`` arrives decoded)."""
    if not isinstance(value, str | bytes):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # e.g. NaN written before orjson, or huge integers
        return json.loads(value)


def dt_to_db(value: dt.datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC text, so text order is time order (naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is dt.UTC:
        return value.isoformat(timespec="microseconds")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def dt_from_db(value: Any) -> dt.datetime | None:
    """Parse a timestamp column (text from SQLite, ``datetime`` from Postgres)."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def dt_required(value: Any) -> dt.datetime:
    """Parse a NOT NULL timestamp column."""
    parsed = dt_from_db(value)
    if parsed is None:
        raise ValueError("a required timestamp column is NULL")
    return parsed


def event_to_row(event: Event) -> dict[str, Any]:
    """The ``events`` row of an event."""
    return {
        "run_id": event.run_id,
        "id": event.id,
        "type": event.type._value_,
        "data": json_dumps(event.data),
        "created_at": dt_to_db(event.created_at),
    }


def event_from_row(row: Mapping[str, Any]) -> Event:
    """The event stored in an ``events`` row."""
    return Event(
        run_id=row["run_id"],
        id=int(row["id"]),
        type=EventType(row["type"]),
        data=json_loads(row["data"]),
        created_at=dt_required(row["created_at"]),
    )


def step_to_row(run_id: str, step: TaskStepResult) -> dict[str, Any]:
    """The ``steps`` row of a step record (``seq`` None lets the store number it)."""
    return step_row(run_id, step.__dict__)


def step_row(run_id: str, fields: Mapping[str, Any], event_id: int | None = None) -> dict[str, Any]:
    """The ``steps`` row of a step record's field values (``TaskStepResult.__dict__``).

    ``event_id``: the id of the step's event, when the row stands for the event too (the
    events table then has no row for it; :func:`step_event_from_row` rebuilds it).
    """
    code = fields["error_code"]
    return {
        "run_id": run_id,
        "seq": fields["seq"],
        "task_id": fields["task_id"],
        "attempt": fields["attempt"],
        "step": fields["step"],
        "node_type": fields["node_type"],
        "status": fields["status"].value,
        "completed": fields["completed"],
        "result": json_dumps(fields["result"]),
        "message": fields["message"],
        "error_code": None if code is None else code.value,
        "error_message": fields["error_message"],
        "started_at": dt_to_db(fields["started_at"]),
        "finished_at": dt_to_db(fields["finished_at"]),
        "duration_ms": fields["duration_ms"],
        "event_id": event_id,
    }


def step_event_from_row(row: Mapping[str, Any]) -> Event:
    """The event of a step whose ``steps`` row holds it (``id``: the event's id).

    As the recorder published it: its data is the record, its time the record's
    ``finished_at``.
    """
    code = row["error_code"]
    values = {
        "step": row["step"],
        "result": json_loads(row["result"]),
        "completed": bool(row["completed"]),
        "message": row["message"],
        "status": TaskStatus(row["status"]),
        "error_code": None if code is None else ErrorCode(code),
        "error_message": row["error_message"],
        "run_id": row["run_id"],
        "seq": row["seq"],
        "task_id": row["task_id"],
        "node_type": row["node_type"],
        "attempt": row["attempt"],
        "started_at": dt_from_db(row["started_at"]),
        "finished_at": dt_from_db(row["finished_at"]),
        "duration_ms": row["duration_ms"],
    }
    data = step_view_of(values)
    return Event(
        run_id=row["run_id"],
        id=int(row["id"]),
        type=EventType.STEP,
        data=step_from_row(row).dict() if data is None else data,
        created_at=dt_required(row["finished_at"]),
    )


def step_view_of(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """A step record's ``dict()`` from its field values, built without pydantic.

    None unless each value is one pydantic's serializer would pass through as is (plain JSON
    data, finite floats, UTC timestamps). Every step event carries one, and the serializer
    costs more than the rest of the event.
    """
    parts = step_view_and_row(values, row=False)
    return None if parts is None else parts[0]


def step_view_and_row(
    values: Mapping[str, Any], *, row: bool = True
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """``step_view_of(values)`` and ``step_row(values["run_id"], values)``, in one pass.

    What a recorder needs of every step it records: the values are checked, and each
    timestamp formatted, once for both. None where :func:`step_view_of` is None;
    ``row=False``: no row.
    """
    started, finished = values["started_at"], values["finished_at"]
    result = values["result"]
    # The checks and the formatting inline: this runs for every step of every run.
    if started is None:
        started_db = started_iso = None
    elif type(started) is dt.datetime and started.tzinfo is dt.UTC:
        started_db, started_iso = _stamps(started)
    else:
        return None
    if finished is None:
        finished_db = finished_iso = None
    elif type(finished) is dt.datetime and finished.tzinfo is dt.UTC:
        finished_db, finished_iso = _stamps(finished)
    else:
        return None
    copy = _plain_copy(result, 0)
    if copy is _NOT_PLAIN:
        return None
    code = values["error_code"]
    # ``_value_``: the member's value without the ``value`` descriptor (a Python call).
    code_value = None if code is None else code._value_
    status = values["status"]._value_
    view = {
        "step": values["step"],
        "result": copy,
        "completed": values["completed"],
        "message": values["message"],
        "status": status,
        "error_code": code_value,
        "error_message": values["error_message"],
        "run_id": values["run_id"],
        "seq": values["seq"],
        "task_id": values["task_id"],
        "node_type": values["node_type"],
        "attempt": values["attempt"],
        "started_at": started_iso,
        "finished_at": finished_iso,
        "duration_ms": values["duration_ms"],
    }
    if not row:
        return view, None
    return view, {
        "run_id": values["run_id"],
        "seq": values["seq"],
        "task_id": values["task_id"],
        "attempt": values["attempt"],
        "step": values["step"],
        "node_type": values["node_type"],
        "status": status,
        "completed": values["completed"],
        "result": json_dumps(result),
        "message": values["message"],
        "error_code": code_value,
        "error_message": values["error_message"],
        "started_at": started_db,
        "finished_at": finished_db,
        "duration_ms": values["duration_ms"],
        "event_id": None,
    }


def _stamps(value: dt.datetime) -> tuple[str, str]:
    # A UTC timestamp as dt_to_db writes it and as pydantic serializes it (Z, no fraction
    # when it is zero), from one isoformat call.
    text = value.isoformat(timespec="microseconds")
    return text, (text[:-6] if value.microsecond else text[:-13]) + "Z"


_PLAIN_LEAVES = (str, int, bool, type(None))
_NOT_PLAIN: Any = object()


def _plain_copy(value: Any, depth: int) -> Any:
    """A copy of plain JSON data (finite floats), as pydantic's serializer returns it.

    ``_NOT_PLAIN`` for anything else. New containers: a later change to the record's
    result must not show in the event. Leaves are taken inline (no call for each).
    """
    kind = type(value)
    if kind in _PLAIN_LEAVES:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NOT_PLAIN
    if depth > 64:
        return _NOT_PLAIN
    if kind is dict:
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                return _NOT_PLAIN
            if type(v) not in _PLAIN_LEAVES:
                v = _plain_copy(v, depth + 1)
                if v is _NOT_PLAIN:
                    return _NOT_PLAIN
            out[k] = v
        return out
    if kind is list:
        items: list[Any] = []
        for v in value:
            if type(v) not in _PLAIN_LEAVES:
                v = _plain_copy(v, depth + 1)
                if v is _NOT_PLAIN:
                    return _NOT_PLAIN
            items.append(v)
        return items
    return _NOT_PLAIN


def record_rows(
    run_id: str,
    events: Sequence[Event] = (),
    steps: Sequence[TaskStepResult] = (),
    logs: Sequence[Any] = (),
) -> RecordRows:
    """The rows of events, step records and log records (``LogRecord``) of run ``run_id``."""
    return RecordRows(
        [event_to_row(e) for e in events],
        [step_to_row(run_id, s) for s in steps],
        [log.to_row() for log in logs],
    )


def step_from_row(row: Mapping[str, Any]) -> TaskStepResult:
    """The step record stored in a ``steps`` row."""
    return TaskStepResult(
        step=row["step"],
        result=json_loads(row["result"]),
        completed=bool(row["completed"]),
        message=row["message"],
        status=TaskStatus(row["status"]),
        error_code=None if row["error_code"] is None else ErrorCode(row["error_code"]),
        error_message=row["error_message"],
        run_id=row["run_id"],
        seq=int(row["seq"]),
        task_id=row["task_id"],
        node_type=row["node_type"],
        attempt=int(row["attempt"]),
        started_at=dt_from_db(row["started_at"]),
        finished_at=dt_from_db(row["finished_at"]),
        duration_ms=row["duration_ms"],
    )
