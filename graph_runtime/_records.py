"""Step records and events built on the recorder's hot path, without validating them again.

Every node attempt makes one ``TaskStepResult`` and one ``Event``, and the recorder builds
their values itself, with their exact types. Validating them again costs more than the rest of
a step's bookkeeping, and pydantic's ``model_construct`` costs more still (it resolves aliases
field by field in Python). These constructors set the instance dict directly, as
``model_construct`` does, so the result is equal to a validated instance field for field.

:func:`record_of` first checks what validation would check (exact types, ranges and the
model's consistency rules) and hands anything else to the validating constructor, so a bad
value still fails, or is coerced, exactly as before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from pydantic import BaseModel

from checkpoints.store import step_view_and_row, step_view_of
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, TaskStepResult

__all__ = ["new_event", "record_of", "step_parts", "step_values", "step_view"]

_M = TypeVar("_M", bound=BaseModel)
_setattr = object.__setattr__
_OPTIONAL_STR = (str, type(None))


def _construct(cls: type[_M], values: dict[str, Any]) -> _M:
    # What BaseModel.model_construct does when it is given every field (and the model has
    # neither extra fields nor private attributes), without its per-field loop.
    model = cls.__new__(cls)
    _setattr(model, "__dict__", values)
    _setattr(model, "__pydantic_fields_set__", set(values))
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


def new_event(
    run_id: str, event_id: int, type_: EventType, data: dict[str, Any], created_at: dt.datetime
) -> Event:
    """An event from values of the exact field types (``event_id`` >= 1), not validated."""
    return _construct(
        Event,
        {"run_id": run_id, "id": event_id, "type": type_, "data": data, "created_at": created_at},
    )


def step_values(
    *,
    step: str,
    result: Any,
    status: TaskStatus,
    message: str,
    error_code: ErrorCode | None,
    error_message: str | None,
    run_id: str | None,
    seq: int,
    task_id: str | None,
    node_type: str | None,
    attempt: int,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    duration_ms: float,
) -> dict[str, Any]:
    """A step record's field values, in the model's field order, ``completed`` derived.

    A validated instance's dict has that order too (and ``repr`` shows it).
    """
    return {
        "step": step,
        "result": result,
        "completed": status == TaskStatus.COMPLETED,  # a plain "completed" is validated
        "message": message,
        "status": status,
        "error_code": error_code,
        "error_message": error_message,
        "run_id": run_id,
        "seq": seq,
        "task_id": task_id,
        "node_type": node_type,
        "attempt": attempt,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_ms": duration_ms,
    }


def record_of(values: dict[str, Any]) -> TaskStepResult:
    """The record of :func:`step_values`, validated only when a value needs it.

    That is, when a value is not one validation would accept as is: a bad value still
    fails, or is coerced, exactly as validation would do.
    """
    if _exact(values):
        return _construct(TaskStepResult, values)
    return TaskStepResult(**values)


def _exact(values: dict[str, Any]) -> bool:
    # Exact types and ranges, and the model's consistency rules (TaskStepResult._consistent).
    seq, attempt, duration = values["seq"], values["attempt"], values["duration_ms"]
    code, error = values["error_code"], values["error_message"]
    return (
        type(values["step"]) is str
        and type(values["message"]) is str
        and type(values["status"]) is TaskStatus
        and type(values["run_id"]) in _OPTIONAL_STR
        and type(values["task_id"]) in _OPTIONAL_STR
        and type(values["node_type"]) in _OPTIONAL_STR
        and type(seq) is int
        and seq >= 1
        and type(attempt) is int
        and attempt >= 1
        and type(values["started_at"]) is dt.datetime
        and type(values["finished_at"]) is dt.datetime
        and type(duration) is float
        and duration >= 0
        and (
            (code is None and error is None)
            or (type(code) is ErrorCode and type(error) is str and not values["completed"])
        )
    )


def step_parts(
    values: dict[str, Any], *, row: bool = True
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """``step_view(record)`` and ``step_to_row(run_id, record)`` of a record never built.

    ``values``: :func:`step_values` with a ``run_id``. A run's recorder needs only these two
    of each step it records. None unless :func:`record_of` would take every value as is and
    :func:`step_view` would pass each through (the caller then builds the record).
    ``row=False``: no row.
    """
    if not _exact(values):
        return None
    return step_view_and_row(values, row=row)


def step_view(record: TaskStepResult) -> dict[str, Any]:
    """``record.dict()``, built directly for the records :func:`record_of` makes.

    Every step event carries one, and pydantic's serializer costs more than the rest of
    the event. Taken only when each value is one the serializer would pass through as is
    (plain JSON data, finite floats, UTC timestamps); anything else goes to ``dict()``.
    """
    view = step_view_of(record.__dict__)
    return record.dict() if view is None else view
