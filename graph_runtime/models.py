"""Domain models: statuses, error codes, step results, task requests and responses, events.

This is the leaf of the package: it imports nothing of ours, so every layer (nodes,
checkpoints, the core, the server) can share these types without import cycles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "ErrorCode",
    "Event",
    "EventType",
    "TaskRequest",
    "TaskResponse",
    "TaskStatus",
    "TaskStepResult",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class TaskStatus(StrEnum):
    """The status of a run (and of a step). The values are the wire strings."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for statuses a run never leaves."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[TaskStatus] = frozenset(
    {
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
        TaskStatus.TIMED_OUT,
        TaskStatus.STOPPED,
        TaskStatus.CANCELLED,
    }
)

_S = TaskStatus
#: Every legal transition (DESIGN.md §3). Anything not listed raises ``InvalidTransition``.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.CANCELLED}),
    _S.RUNNING: frozenset(
        {_S.COMPLETED, _S.FAILED, _S.TIMED_OUT, _S.PAUSED, _S.STOPPING, _S.CRASHED}
    ),
    _S.PAUSED: frozenset({_S.RUNNING, _S.STOPPED}),
    _S.STOPPING: frozenset({_S.STOPPED, _S.CRASHED}),
    _S.CRASHED: frozenset({_S.RUNNING, _S.FAILED}),
    _S.STOPPED: frozenset(),
    _S.COMPLETED: frozenset(),
    _S.FAILED: frozenset(),
    _S.TIMED_OUT: frozenset(),
    _S.CANCELLED: frozenset(),
}


class ErrorCode(StrEnum):
    """The error codes E001-E007 carried by failed steps, events and HTTP error bodies."""

    VALIDATION_ERROR = "E001"
    TIMEOUT_ERROR = "E002"
    EXECUTION_ERROR = "E003"
    CANCELLED_ERROR = "E004"
    RETRY_EXHAUSTED = "E005"
    DATABASE_ERROR = "E006"
    DSL_EVALUATION_ERROR = "E007"

    @property
    def description(self) -> str:
        """A short human description of the code."""
        return _CODE_DESCRIPTIONS[self]


_CODE_DESCRIPTIONS = {
    ErrorCode.VALIDATION_ERROR: "invalid input or workflow",
    ErrorCode.TIMEOUT_ERROR: "timed out",
    ErrorCode.EXECUTION_ERROR: "a node raised an error",
    ErrorCode.CANCELLED_ERROR: "cancelled",
    ErrorCode.RETRY_EXHAUSTED: "retries exhausted",
    ErrorCode.DATABASE_ERROR: "storage error",
    ErrorCode.DSL_EVALUATION_ERROR: "expression evaluation failed",
}


class TaskStepResult(BaseModel):
    """The record of one node step (one attempt of one task) of a run.

    Consistency rules: ``completed`` is true exactly when ``status`` is ``completed``;
    ``error_code`` and ``error_message`` are set together or not at all, and a completed
    step carries no error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    step: str = Field(description="Node id, or '<node>.<tool>' for a tool call inside a node.")
    result: Any = Field(default=None, description="What the step produced (its state update).")
    completed: bool = Field(default=False, description="True when the step finished successfully.")
    message: str = Field(default="", description="A human-readable summary of the step.")
    status: TaskStatus = Field(default=TaskStatus.PENDING, description="The step's status.")
    error_code: ErrorCode | None = Field(default=None, description="E001-E007 when it failed.")
    error_message: str | None = Field(default=None, description="What went wrong.")
    run_id: str | None = Field(default=None, description="The run this step belongs to.")
    seq: int | None = Field(default=None, ge=1, description="1-based step number within the run.")
    task_id: str | None = Field(default=None, description="LangGraph task id of the step.")
    node_type: str | None = Field(default=None, description="The node's type, e.g. 'condition'.")
    attempt: int = Field(default=1, ge=1, description="1 for the first try, then 2, 3...")
    started_at: dt.datetime | None = Field(default=None, description="When the attempt began.")
    finished_at: dt.datetime | None = Field(default=None, description="When the attempt ended.")
    duration_ms: float | None = Field(default=None, ge=0, description="Wall time of the attempt.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.completed != (self.status is TaskStatus.COMPLETED):
            raise ValueError("completed must be true exactly when status is 'completed'")
        if (self.error_code is None) != (self.error_message is None):
            raise ValueError("error_code and error_message must be set together")
        if self.completed and self.error_code is not None:
            raise ValueError("a completed step cannot carry an error")
        return self

    def dict(self) -> dict[str, Any]:  # type: ignore[override]
        """A JSON-ready dict that ``from_dict`` turns back into an equal record."""
        # model_dump(mode="json") without its wrapper: every step event carries one.
        return self.__pydantic_serializer__.to_python(self, mode="json")  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskStepResult:
        """Build a record from ``dict()`` output (or any mapping of its fields)."""
        return cls.model_validate(data)

    def __str__(self) -> str:
        return (
            f"TaskStepResult(step={self.step!r}, status={self.status.value!r}, "
            f"completed={self.completed})"
        )


class TaskRequest(BaseModel):
    """A request to run a stored workflow in the background (the task API)."""

    model_config = ConfigDict(extra="forbid")

    task_type: str = Field(min_length=1, max_length=64, description="The workflow id to run.")
    description: str = Field(default="", max_length=2000, description="What this task is for.")
    parameters: dict[str, Any] | None = Field(default=None, description="The workflow's input.")
    priority: int = Field(default=5, ge=1, le=10, description="1 (lowest) to 10 (first).")
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=86400, description="Bound on the whole run; then it times out."
    )


class TaskResponse(BaseModel):
    """The status and, once finished, the result of a task (a run)."""

    task_id: str = Field(description="The run id.")
    status: TaskStatus = Field(description="The run's current status.")
    progress: float | None = Field(default=None, ge=0, le=1, description="0.0 to 1.0.")
    result: Any = Field(default=None, description="The run's output once it completed.")
    error: str | None = Field(default=None, description="Why it failed, timed out or stopped.")
    error_code: ErrorCode | None = Field(default=None, description="E001-E007 when it failed.")
    created_at: dt.datetime = Field(default_factory=utcnow, description="When it was submitted.")
    updated_at: dt.datetime = Field(default_factory=utcnow, description="Last status change.")
    message: str = Field(default="", description="A human-readable status line.")


class EventType(StrEnum):
    """The kinds of run events (DESIGN.md §7)."""

    STATUS = "status"
    STEP = "step"
    LOG = "log"
    TOKEN = "token"
    CUSTOM = "custom"
    INTERRUPT = "interrupt"
    STREAM = "stream"
    """A LangGraph stream chunk ``{mode, ns, data}`` a run on a thread asked to record."""
    END = "end"


class Event(BaseModel):
    """One run event; ``id`` increases by one per event within a run."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="The run the event belongs to.")
    id: int = Field(ge=1, description="Per-run, strictly increasing event id.")
    type: EventType = Field(description="The event kind.")
    data: dict[str, Any] = Field(default_factory=dict, description="The event payload.")
    created_at: dt.datetime = Field(default_factory=utcnow, description="When it happened.")
