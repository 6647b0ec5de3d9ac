"""Every error response, from one table: exception → HTTP status + ``ErrorBody``.

* A ``GraphRuntimeError`` gets the status of its nearest class in :data:`ERROR_STATUS` and a
  body ``{detail, code, errors: [{path, message, code, severity}]}`` built from the error's
  message, code and located problems.
* FastAPI's ``RequestValidationError`` is 422 E001, one item per problem, each located by a
  JSON pointer built from pydantic's ``loc`` (``("body", "input_data")`` → ``/input_data``).
* Starlette's ``HTTPException`` (unknown route, wrong method, 413) keeps its status, E001.
* Anything else is a bug: :class:`UnexpectedErrorMiddleware` logs it with its traceback and
  answers 500 E003 with no traceback in the body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph_runtime.api_models import ErrorBody, ErrorItem
from graph_runtime.errors import (
    ConflictError,
    ExpressionCompileError,
    ExpressionError,
    GraphRuntimeError,
    InputValidationError,
    InvalidTransition,
    NodeExecutionError,
    NotFoundError,
    RetryExhaustedError,
    RunCancelledError,
    RunNotFound,
    RunTimeoutError,
    StoreError,
    WorkflowNotFound,
    WorkflowValidationError,
)
from graph_runtime.models import ErrorCode
from graph_runtime.schema import pointer

__all__ = [
    "ERROR_STATUS",
    "UnexpectedErrorMiddleware",
    "error_body",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "status_for",
]

logger = logging.getLogger(__name__)

#: The HTTP status of every domain error. A subclass not listed uses its nearest listed base.
ERROR_STATUS: dict[type[GraphRuntimeError], int] = {
    GraphRuntimeError: 500,
    WorkflowValidationError: 422,
    InputValidationError: 422,
    ExpressionCompileError: 422,
    ExpressionError: 422,
    InvalidTransition: 409,
    ConflictError: 409,
    RunCancelledError: 409,
    NotFoundError: 404,
    WorkflowNotFound: 404,
    RunNotFound: 404,
    RunTimeoutError: 408,
    NodeExecutionError: 500,
    RetryExhaustedError: 500,
    StoreError: 503,
}

#: What each documented status means, for the OpenAPI ``responses`` of every route.
_MEANING = {
    400: "The body could not be read.",
    404: "No such run or workflow.",
    409: "Not allowed in the run's current status (late, duplicate or illegal control).",
    413: "The request body is larger than the server's limit.",
    422: "Invalid request: every problem, located by a JSON pointer.",
    500: "An internal error (logged by the server).",
    503: "The storage failed.",
}


def status_for(exc: GraphRuntimeError) -> int:
    """The HTTP status of a domain error (its nearest class in :data:`ERROR_STATUS`)."""
    for cls in type(exc).__mro__:
        status = ERROR_STATUS.get(cls)  # type: ignore[call-overload]
        if status is not None:
            return status
    return 500  # pragma: no cover -- GraphRuntimeError itself is in the table


def error_body(exc: GraphRuntimeError) -> ErrorBody:
    """The response body of a domain error."""
    items = [
        ErrorItem(path=p.path, message=p.message, code=p.code, severity=p.severity)
        for p in exc.problems
    ]
    return ErrorBody(detail=exc.message, code=exc.code, errors=items)


def error_response(
    status: int, body: ErrorBody, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A JSON error response."""
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these error statuses, all with the ``ErrorBody`` model."""
    return {s: {"model": ErrorBody, "description": _MEANING[s]} for s in statuses}


def validation_items(errors: Sequence[Any]) -> list[ErrorItem]:
    """Pydantic/FastAPI errors as items with JSON pointers (``loc`` minus where it came from)."""
    items = []
    for err in errors:
        loc = list(err.get("loc") or ())
        where = str(loc.pop(0)) if loc and loc[0] in ("body", "query", "path", "header") else ""
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            # loc holds a character offset here, not a location in the document.
            reason = (err.get("ctx") or {}).get("error", "")
            offset = f" at character {loc[0]}" if loc else ""
            items.append(ErrorItem(path="", message=f"invalid JSON: {reason}{offset}"))
            continue
        if where and where != "body":
            message = f"{where} parameter: {message}"
        items.append(ErrorItem(path=pointer(*_pointer_parts(loc)), message=message))
    return items


def _pointer_parts(loc: Iterable[Any]) -> list[str | int]:
    # pydantic adds union members and validator names (``function-after[...]``) to loc.
    return [p for p in loc if isinstance(p, int) or not str(p).startswith("function-")]


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GraphRuntimeError)  # registered for this class only
    status = status_for(exc)
    if status >= 500:
        logger.error(
            "%s: %s",
            type(exc).__name__,
            exc.message,
            extra={"action": "http_error", "path": request.url.path},
        )
    return error_response(status, error_body(exc))


async def _request_invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for this class only
    items = validation_items(exc.errors())
    count = len(items)
    detail = f"the request has {count} problem{'s' if count != 1 else ''}: " + "; ".join(
        f"{i.path or '/'}: {i.message}" for i in items[:5]
    )
    return error_response(
        422, ErrorBody(detail=detail, code=ErrorCode.VALIDATION_ERROR, errors=items)
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # registered for this class only
    code = ErrorCode.EXECUTION_ERROR if exc.status_code >= 500 else ErrorCode.VALIDATION_ERROR
    body = ErrorBody(detail=str(exc.detail), code=code)
    return error_response(exc.status_code, body, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers and the catch-all middleware on ``app``."""
    app.add_exception_handler(GraphRuntimeError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(UnexpectedErrorMiddleware)


class UnexpectedErrorMiddleware:
    """Turns an unexpected exception into a logged 500 E003 with no traceback in the body.

    Starlette's own 500 handler re-raises after answering (the server logs it a second time);
    catching here, inside it, logs once and keeps tracebacks out of responses.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception(
                "unexpected error in %s %s",
                scope.get("method"),
                scope.get("path"),
                extra={"action": "http_500", "path": scope.get("path")},
            )
            if started:
                raise  # half a response is out: only the server can end the connection
            body = ErrorBody(
                detail="internal error (logged by the server)", code=ErrorCode.EXECUTION_ERROR
            )
            await error_response(500, body)(scope, receive, send)
