"""HTTP request and response bodies, shared by the server and the Python client.

The server validates requests with these models and documents them in OpenAPI; the client
parses responses with the same models, so both sides agree field by field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from graph_runtime.models import ErrorCode, TaskStatus

__all__ = [
    "ID_PATTERN",
    "ErrorBody",
    "ErrorItem",
    "ExecutionCreate",
    "ExecutionStatus",
    "Health",
    "LogEntry",
    "LogsResponse",
    "ResumeRequest",
    "StepsResponse",
    "ValidationReport",
    "WorkflowList",
    "WorkflowOut",
]

#: Client-chosen ids (execution ids): letters, digits and ``_.:-``, 1 to 128 characters.
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecutionCreate(_Body):
    """Start a run of a workflow (seed API ``POST /api/v1/execute``)."""

    execution_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Idempotency key: the same id submitted twice runs once. Generated if absent.",
    )
    workflow_id: str = Field(min_length=1, max_length=64, description="The workflow to run.")
    definition: dict[str, Any] | None = Field(
        default=None,
        description="The workflow document; stored as a new version of `workflow_id`. "
        "Optional when the workflow is stored already.",
    )
    version: int | None = Field(default=None, ge=1, description="Stored version; latest if absent.")
    input_data: dict[str, Any] = Field(default_factory=dict, description="The run's input.")
    priority: int = Field(default=5, ge=1, le=10, description="1 (lowest) to 10 (first).")
    timeout_seconds: float | None = Field(
        default=None, gt=0, le=86_400, description="Bound on the whole run (then E002, timed_out)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form, kept with the run."
    )


class ExecutionStatus(BaseModel):
    """A run's status (``GET /api/v1/execute/{id}/status`` and every control's answer)."""

    execution_id: str = Field(description="The run id.")
    workflow_id: str = Field(description="The workflow it runs.")
    workflow_version: int | None = Field(description="The stored workflow version it runs.")
    status: TaskStatus = Field(description="pending, running, paused, stopping, stopped, ...")
    current_node: str | None = Field(default=None, description="The node it is at.")
    progress: float = Field(ge=0, le=1, description="Finished steps over expected steps.")
    message: str = Field(default="", description="A human-readable status line.")
    result: Any = Field(default=None, description="The output once completed.")
    error: str | None = Field(default=None, description="Why it failed, timed out or stopped.")
    error_code: ErrorCode | None = Field(default=None, description="E001-E007 when it failed.")
    priority: int = Field(description="1 (lowest) to 10 (first).")
    created_at: dt.datetime = Field(description="When it was submitted.")
    updated_at: dt.datetime = Field(description="Last change.")
    started_at: dt.datetime | None = Field(default=None, description="When it first ran.")
    finished_at: dt.datetime | None = Field(default=None, description="When it ended.")


class ResumeRequest(_Body):
    """Optional body of ``POST /api/v1/execute/{id}/resume``."""

    value: Any = Field(
        default=None, description="Answer to a waiting `human` node (`Command(resume=value)`)."
    )


class LogEntry(BaseModel):
    """One log line of a run."""

    id: int = Field(description="Increasing id; pass it as `after` to page.")
    level: str = Field(description="debug, info, warning, error or critical.")
    message: str = Field(description="The text.")
    node_id: str | None = Field(default=None, description="The node that logged it.")
    created_at: dt.datetime = Field(description="When it was logged.")


class LogsResponse(BaseModel):
    """A page of a run's log."""

    execution_id: str = Field(description="The run id.")
    logs: list[LogEntry] = Field(description="Oldest first.")


class StepsResponse(BaseModel):
    """A run's step records."""

    execution_id: str = Field(description="The run id.")
    steps: list[dict[str, Any]] = Field(description="`TaskStepResult` records in `seq` order.")


class WorkflowOut(BaseModel):
    """One stored workflow version."""

    workflow_id: str = Field(description="The workflow id.")
    version: int = Field(description="1, 2, 3... per workflow id.")
    content_hash: str = Field(description="Hash of the canonical document.")
    created_at: dt.datetime = Field(description="When this version was stored.")
    name: str | None = Field(default=None, description="The document's `name`.")
    description: str | None = Field(default=None, description="The document's `description`.")
    definition: dict[str, Any] | None = Field(default=None, description="The document itself.")


class WorkflowList(BaseModel):
    """Stored workflows (latest version of each)."""

    workflows: list[WorkflowOut] = Field(description="Sorted by id.")


class ErrorItem(BaseModel):
    """One located problem."""

    path: str = Field(description="JSON pointer into the request body or document.")
    message: str = Field(description="What is wrong there.")
    code: ErrorCode = Field(default=ErrorCode.VALIDATION_ERROR, description="E001-E007.")
    severity: Literal["error", "warning"] = Field(default="error", description="error or warning.")


class ValidationReport(BaseModel):
    """Answer of ``POST /api/v1/workflows/validate``."""

    valid: bool = Field(description="True when the document has no errors.")
    errors: list[ErrorItem] = Field(default_factory=list, description="Every error.")
    warnings: list[ErrorItem] = Field(default_factory=list, description="Every warning.")


class ErrorBody(BaseModel):
    """Every error response: a sentence, an error code, and located problems."""

    detail: str = Field(description="What went wrong.")
    code: ErrorCode = Field(description="E001-E007.")
    errors: list[ErrorItem] = Field(default_factory=list, description="Located problems.")


class Health(BaseModel):
    """``GET /healthz``."""

    status: Literal["ok", "degraded"] = Field(description="ok, or degraded when storage fails.")
    active_runs: int = Field(description="Runs executing now.")
    queue_depth: int = Field(description="Runs waiting for a worker.")
    version: str = Field(description="graph-runtime version.")
    writable: bool = Field(default=True, description="The database takes writes.")
    journaled: int = Field(
        default=0,
        description="Rows (events, steps, logs) the database refused, waiting in the "
        "write-failure journal; replayed as soon as it takes writes again.",
    )
    error: str | None = Field(default=None, description="Why storage is degraded.")
