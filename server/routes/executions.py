"""The seed execution API (seed 001): ``/api/v1/execute`` and the controls of one run."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response

from checkpoints.store import StoredWorkflow
from graph_runtime.api_models import (
    ExecutionCreate,
    ExecutionStatus,
    LogEntry,
    LogsResponse,
    ResumeRequest,
    StepsResponse,
)
from graph_runtime.errors import (
    ConflictError,
    InputValidationError,
    Problem,
    RunNotFound,
    WorkflowValidationError,
)
from graph_runtime.schema import ID_PATTERN as WORKFLOW_ID_PATTERN
from server.errors import error_responses
from server.routes._common import (
    MAX_SQL_INT,
    RunId,
    RuntimeDep,
    check_finite,
    execution_status,
)
from server.sse import event_stream, resume_point

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/execute", tags=["executions"])

_CONTROL = error_responses(404, 409, 422)


@router.post(
    "",
    status_code=202,
    response_model=ExecutionStatus,
    summary="Start a run",
    description="Queue a run of a stored workflow, or of `definition` (validated and stored as "
    "a version of `workflow_id` first). 202 for a new run; 200 with the existing run when "
    "`execution_id` was used before (nothing new runs).",
    responses={
        200: {"model": ExecutionStatus, "description": "The execution id exists: that run."},
        **error_responses(404, 409, 413, 422),
    },
)
async def execute(
    body: ExecutionCreate, runtime: RuntimeDep, response: Response
) -> ExecutionStatus:
    if body.execution_id is not None:
        existing = await _existing(runtime, body, body.execution_id)
        if existing is not None:
            response.status_code = 200
            return existing
    check_finite(body.input_data, "/input_data")
    check_finite(body.metadata, "/metadata")
    stored = await _workflow_for(runtime, body)
    record, created = await runtime.manager.submit(
        workflow_id=stored.workflow_id,
        version=stored.version,
        input=body.input_data,
        run_id=body.execution_id,
        priority=body.priority,
        timeout_seconds=body.timeout_seconds,
        metadata=body.metadata,
    )
    if not created:  # a concurrent request with the same execution id won the race
        _same_workflow(body, record.workflow_id)
        response.status_code = 200
    else:
        logger.info(
            "run submitted",
            extra={"action": "submit", "run_id": record.run_id, "workflow_id": stored.workflow_id},
        )
    return await execution_status(runtime, record.run_id)


async def _existing(
    runtime: RuntimeDep, body: ExecutionCreate, execution_id: str
) -> ExecutionStatus | None:
    try:
        record = await runtime.get_run(execution_id)
    except RunNotFound:
        return None
    _same_workflow(body, record.workflow_id)
    return await execution_status(runtime, record.run_id)


def _same_workflow(body: ExecutionCreate, workflow_id: str) -> None:
    if workflow_id != body.workflow_id:
        raise ConflictError(
            f"execution id {body.execution_id!r} is already used by a run of workflow "
            f"{workflow_id!r}"
        )


async def _workflow_for(runtime: RuntimeDep, body: ExecutionCreate) -> StoredWorkflow:
    if body.definition is None:
        # Looked up by id only: Runtime.submit would also try the id as a file path.
        return await runtime.get_workflow(body.workflow_id, body.version)
    problems = []
    if not re.fullmatch(WORKFLOW_ID_PATTERN, body.workflow_id):
        message = f"must match {WORKFLOW_ID_PATTERN} to store a definition under it"
        problems.append(Problem(path="/workflow_id", message=message))
    document_id = body.definition.get("id")
    if document_id is not None and document_id != body.workflow_id:
        message = f"the document's id {document_id!r} is not the workflow_id {body.workflow_id!r}"
        problems.append(Problem(path="/definition/id", message=message))
    if body.version is not None:
        message = "give either a definition or a stored version, not both"
        problems.append(Problem(path="/version", message=message))
    if problems:
        raise InputValidationError("the execution request is inconsistent", problems=problems)
    check_finite(body.definition, "/definition")
    try:
        return await runtime.save_workflow(body.definition, workflow_id=body.workflow_id)
    except WorkflowValidationError as exc:
        located = [
            Problem(
                path="/definition" + p.path, message=p.message, code=p.code, severity=p.severity
            )
            for p in exc.problems
        ]
        raise WorkflowValidationError(located) from exc


@router.get(
    "/{execution_id}/status",
    response_model=ExecutionStatus,
    summary="A run's status",
    description="Status, current node and progress (live while it runs), result or error.",
    responses=error_responses(404, 422),
)
async def get_status(execution_id: RunId, runtime: RuntimeDep) -> ExecutionStatus:
    return await execution_status(runtime, execution_id)


@router.get(
    "/{execution_id}/logs",
    response_model=LogsResponse,
    summary="A run's log",
    description="Log lines at `level` or above, oldest first; page with `after` (a log id).",
    responses=error_responses(404, 422),
)
async def get_logs(
    execution_id: RunId,
    runtime: RuntimeDep,
    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"] | None,
        Query(description="Minimum level; all levels when absent."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many lines.")] = 100,
    after: Annotated[
        int, Query(ge=0, le=MAX_SQL_INT, description="Only lines with a larger id.")
    ] = 0,
) -> LogsResponse:
    records = await runtime.logs(execution_id, level=level, limit=limit, after=after)
    entries = [
        LogEntry(
            id=r.id, level=r.level, message=r.message, node_id=r.node_id, created_at=r.created_at
        )
        for r in records
    ]
    return LogsResponse(execution_id=execution_id, logs=entries)


@router.get(
    "/{execution_id}/steps",
    response_model=StepsResponse,
    summary="A run's steps",
    description="Every `TaskStepResult` of the run (one per node attempt), in order.",
    responses=error_responses(404, 422),
)
async def get_steps(execution_id: RunId, runtime: RuntimeDep) -> StepsResponse:
    steps = await runtime.steps(execution_id)
    return StepsResponse(execution_id=execution_id, steps=[s.dict() for s in steps])


@router.get(
    "/{execution_id}/events",
    response_model=None,
    summary="A run's events (SSE)",
    description="Server-Sent Events: `id:` is the event id, `event:` its type, `data:` the "
    "whole event as JSON. Resumes after `Last-Event-ID` (or `after`): stored events first, "
    "then live ones, no gap, no duplicate. Ends after the `end` event; `: heartbeat` comments "
    "keep the connection open.",
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "The event stream.",
        },
        **error_responses(404, 422),
    },
)
async def get_events(
    execution_id: RunId,
    runtime: RuntimeDep,
    request: Request,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_SQL_INT, description="Resume after this event id (0: from the start)."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID", description="Set by reconnecting clients; wins over `after`."
        ),
    ] = None,
) -> Response:
    return await event_stream(
        runtime,
        execution_id,
        resume_point(last_event_id, after),
        heartbeat=request.app.state.config.heartbeat_seconds,
        stats=request.app.state.sse_stats,
    )


@router.post(
    "/{execution_id}/pause",
    status_code=202,
    response_model=ExecutionStatus,
    summary="Pause a run",
    description="The run stops at its next superstep boundary with its checkpoint saved "
    "(status `paused`). 409 unless it is running.",
    responses=_CONTROL,
)
async def pause(execution_id: RunId, runtime: RuntimeDep) -> ExecutionStatus:
    await runtime.pause(execution_id)
    return await execution_status(runtime, execution_id)


@router.post(
    "/{execution_id}/resume",
    status_code=202,
    response_model=ExecutionStatus,
    summary="Resume a run",
    description="Continue a paused (or crashed) run from its checkpoint; `value` answers a "
    "waiting `human` node. 409 unless it is paused or crashed.",
    responses={**_CONTROL, **error_responses(413)},
)
async def resume(
    execution_id: RunId,
    runtime: RuntimeDep,
    body: Annotated[ResumeRequest | None, Body(description="Optional resume value.")] = None,
) -> ExecutionStatus:
    value = None if body is None else body.value
    check_finite(value, "/value")
    await runtime.resume(execution_id, value)
    return await execution_status(runtime, execution_id)


@router.post(
    "/{execution_id}/stop",
    status_code=202,
    response_model=ExecutionStatus,
    summary="Stop a run",
    description="Cut a running run (status `stopping`, then `stopped` with E004), end a paused "
    "one, or cancel one that has not started. 409 when it already ended.",
    responses=_CONTROL,
)
async def stop(execution_id: RunId, runtime: RuntimeDep) -> ExecutionStatus:
    await runtime.stop(execution_id)
    return await execution_status(runtime, execution_id)
