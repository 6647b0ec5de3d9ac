"""The task API (seed 002): a stored workflow run in the background, seen as a task."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from graph_runtime.errors import InvalidTransition
from graph_runtime.models import TaskRequest, TaskResponse, TaskStatus
from server.errors import error_responses
from server.routes._common import RunId, RuntimeDep, check_finite

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


@router.post(
    "",
    status_code=202,
    response_model=TaskResponse,
    summary="Create a task",
    description="Run the stored workflow `task_type` with `parameters` as its input, in the "
    "background. Poll `GET /api/v1/tasks/{task_id}` for progress and the result.",
    responses=error_responses(404, 413, 422),
)
async def create_task(body: TaskRequest, runtime: RuntimeDep) -> TaskResponse:
    parameters = body.parameters or {}
    check_finite(parameters, "/parameters")
    stored = await runtime.get_workflow(body.task_type)
    record, _ = await runtime.manager.submit(
        workflow_id=stored.workflow_id,
        version=stored.version,
        input=parameters,
        priority=body.priority,
        timeout_seconds=body.timeout_seconds,
        metadata={"description": body.description} if body.description else None,
    )
    logger.info("task created", extra={"action": "submit", "run_id": record.run_id})
    return await runtime.status(record.run_id)


@router.get(
    "/{task_id}",
    response_model=TaskResponse,
    summary="A task's status",
    description="Status, progress (live while it runs), and the result or error once it ended.",
    responses=error_responses(404, 422),
)
async def get_task(task_id: RunId, runtime: RuntimeDep) -> TaskResponse:
    return await runtime.status(task_id)


@router.delete(
    "/{task_id}",
    response_model=TaskResponse,
    summary="Cancel a task",
    description="Cancel a task that has not started, or stop one that is running or paused; "
    "returns it (a running task is `stopping` until its current step is cut). 409 when the "
    "task already ended.",
    responses=error_responses(404, 409, 422),
)
async def delete_task(task_id: RunId, runtime: RuntimeDep) -> TaskResponse:
    record = await runtime.get_run(task_id)
    if record.status.is_terminal:
        raise InvalidTransition(
            record.status, TaskStatus.STOPPED, f"task {task_id!r} already ended"
        )
    if record.status is not TaskStatus.STOPPING:  # a stop in flight: DELETE again is a no-op
        await runtime.stop(task_id)
    return await runtime.status(task_id)
