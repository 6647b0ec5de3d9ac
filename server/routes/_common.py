"""What the routers share: the runtime dependency, typed path ids, and JSON value checks."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from graph_runtime.api_models import ID_PATTERN, ExecutionStatus
from graph_runtime.errors import InputValidationError, Problem
from graph_runtime.runtime import Runtime
from graph_runtime.schema import pointer

__all__ = [
    "MAX_SQL_INT",
    "RunId",
    "RuntimeDep",
    "WorkflowId",
    "check_finite",
    "execution_status",
    "get_runtime",
]

#: Largest integer a query parameter may carry into SQL (SQLite integers are 64-bit signed).
MAX_SQL_INT = 2**63 - 1


async def get_runtime(request: Request) -> Runtime:
    """The app's ``Runtime`` (set by the lifespan).

    A coroutine, so FastAPI calls it on the loop instead of in its thread pool.
    """
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RunId = Annotated[
    str, Path(pattern=ID_PATTERN, description="The run id (the seed API's execution id).")
]
WorkflowId = Annotated[str, Path(pattern=ID_PATTERN, description="The workflow id.")]


async def execution_status(runtime: Runtime, run_id: str) -> ExecutionStatus:
    """A run's ``ExecutionStatus``, with live progress and current node while it runs."""
    response = await runtime.status(run_id)
    record = await runtime.get_run(run_id)
    return ExecutionStatus(
        execution_id=record.run_id,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        status=record.status,
        current_node=runtime.current_node(run_id, record),
        # status() read the record first; the later read wins when the run ended in between.
        progress=min(max(record.progress, 0.0), 1.0)
        if record.status.is_terminal
        else response.progress or 0.0,
        message=f"run {record.status.value}",
        result=record.result,
        error=record.error,
        error_code=record.error_code,
        priority=record.priority,
        created_at=record.created_at,
        updated_at=record.updated_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
    )


def check_finite(value: Any, path: str) -> None:
    """Refuse NaN and ±Infinity anywhere in a JSON value (Python's parser lets them through).

    Raises:
        InputValidationError: with the pointer of every such number.
    """
    problems = [
        Problem(path=where, message="numbers must be finite (no NaN or Infinity)")
        for where in _non_finite(value, path)
    ]
    if problems:
        raise InputValidationError("the request holds a non-finite number", problems=problems)


def _non_finite(value: Any, path: str) -> Iterator[str]:
    # Iterative: a hostile document may nest deeper than Python's recursion limit.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            yield where
        elif isinstance(item, dict):
            stack.extend((v, where + pointer(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, where + pointer(i)) for i, v in enumerate(item))
