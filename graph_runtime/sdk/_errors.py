"""HTTP error responses back into the exceptions the server raised (the client's boundary).

The server maps each ``GraphRuntimeError`` to a status and an ``ErrorBody`` in one table; this
module inverts it, so ``client.status("nope")`` raises ``RunNotFound`` as ``Runtime`` does. It
also copes with bodies that are not ours (a proxy's HTML page, FastAPI's default 422 list).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import httpx
import pydantic

from graph_runtime.api_models import ErrorBody
from graph_runtime.errors import (
    ConflictError,
    ExpressionError,
    GraphRuntimeError,
    InputValidationError,
    InvalidTransition,
    NodeExecutionError,
    NotFoundError,
    Problem,
    RetryExhaustedError,
    RunCancelledError,
    RunNotFound,
    RunTimeoutError,
    StoreError,
    WorkflowNotFound,
    WorkflowValidationError,
)
from graph_runtime.models import ErrorCode, TaskStatus

__all__ = ["Resource", "error_from_response"]

#: What a request is about. It decides which "not found" a 404 is, and what a 422 is: on
#: "document" requests (save, validate) the body is a workflow, so a 422 is always about it.
Resource = Literal["run", "workflow", "document", "other"]

_BY_CODE: dict[ErrorCode, type[GraphRuntimeError]] = {
    ErrorCode.TIMEOUT_ERROR: RunTimeoutError,
    ErrorCode.EXECUTION_ERROR: NodeExecutionError,
    ErrorCode.CANCELLED_ERROR: RunCancelledError,
    ErrorCode.RETRY_EXHAUSTED: RetryExhaustedError,
    ErrorCode.DATABASE_ERROR: StoreError,
}
# InvalidTransition's own message (errors.py); lets a 409 come back with current and target.
_TRANSITION = re.compile(r"cannot go from '(\w+)' to '(\w+)'")


def error_from_response(response: httpx.Response, resource: Resource) -> GraphRuntimeError:
    """The exception an error response stands for (``response`` must have been read)."""
    status = response.status_code
    body = _error_body(response)
    if body is None:
        detail = f"HTTP {status} {response.reason_phrase}".rstrip()
        text = response.text.strip()
        if text:
            detail += f": {text[:300]}"
        code: ErrorCode | None = None
        problems: list[Problem] = _fastapi_problems(response)
    else:
        detail, code = body.detail, body.code
        problems = [
            Problem(path=e.path, message=e.message, code=e.code, severity=e.severity)
            for e in body.errors
        ]
    if status == 404:
        return _not_found(resource, detail)
    if status == 409:
        return _conflict(code, detail)
    if status == 422 or (code is ErrorCode.VALIDATION_ERROR and 400 <= status < 500):
        return _invalid(resource, code, detail, problems)
    if status == 503:
        return StoreError(detail)
    if status == 408:
        return RunTimeoutError(detail)
    cls = _BY_CODE.get(code) if code is not None else None
    return (cls or GraphRuntimeError)(detail)


def _error_body(response: httpx.Response) -> ErrorBody | None:
    try:
        return ErrorBody.model_validate_json(response.content)
    except pydantic.ValidationError:
        return None


def _fastapi_problems(response: httpx.Response) -> list[Problem]:
    """FastAPI's default 422 body, ``{"detail": [{"loc": [...], "msg": ...}]}``, if it is one."""
    try:
        items: Any = json.loads(response.content)["detail"]
        return [
            Problem(path="/" + "/".join(str(p) for p in item["loc"]), message=str(item["msg"]))
            for item in items
        ]
    except (ValueError, KeyError, TypeError):
        return []


def _not_found(resource: Resource, detail: str) -> NotFoundError:
    if resource == "run":
        return RunNotFound(detail)
    if resource in ("workflow", "document"):
        return WorkflowNotFound(detail)
    return NotFoundError(detail)


def _conflict(code: ErrorCode | None, detail: str) -> GraphRuntimeError:
    if code is ErrorCode.CANCELLED_ERROR:
        return RunCancelledError(detail)
    match = _TRANSITION.search(detail)
    if match is not None:
        try:
            current, target = TaskStatus(match[1]), TaskStatus(match[2])
        except ValueError:
            pass
        else:
            return InvalidTransition(current, target, detail)
    return ConflictError(detail)


def _invalid(
    resource: Resource, code: ErrorCode | None, detail: str, problems: list[Problem]
) -> GraphRuntimeError:
    if code is ErrorCode.DSL_EVALUATION_ERROR:
        return ExpressionError(detail)
    # A run request (submit, create_task) fails on its definition or on its fields and input;
    # WorkflowValidationError's own message (errors.py) tells the first apart.
    if resource == "document" or (resource == "workflow" and detail.startswith("the workflow")):
        return WorkflowValidationError(problems or [Problem(path="", message=detail)], detail)
    return InputValidationError(detail, problems=problems)
