"""Sans-I/O half of the HTTP clients: builds ``httpx.Request``s and parses ``httpx.Response``s.

``Client`` and ``AsyncClient`` (``client.py``) only send what this module builds, so both speak
the API the same way, field by field (httpx's ``BaseClient`` split). Each endpoint is a
``_Call``: the request, and the function that turns its response into a model or raises the
exception the server meant (``_errors.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from graph_runtime.api_models import (
    ExecutionCreate,
    ExecutionStatus,
    Health,
    LogEntry,
    LogsResponse,
    ResumeRequest,
    StepsResponse,
    ValidationReport,
    WorkflowList,
    WorkflowOut,
)
from graph_runtime.errors import GraphRuntimeError, InputValidationError, Problem
from graph_runtime.models import (
    TERMINAL_STATUSES,
    TaskRequest,
    TaskResponse,
    TaskStatus,
    TaskStepResult,
)
from graph_runtime.sdk._errors import Resource, error_from_response

__all__ = [
    "DEFAULT_BASE_URL",
    "SETTLED",
    "Document",
    "SupportsToDict",
    "deadline_after",
    "poll_delays",
    "remaining",
]

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API = "/api/v1"
#: Statuses a run rests in until someone acts: ``wait()`` returns on these.
SETTLED = TERMINAL_STATUSES | {TaskStatus.PAUSED, TaskStatus.CRASHED}


class SupportsToDict(Protocol):
    """Anything with ``to_dict()``, such as the ``Workflow`` builder."""

    def to_dict(self) -> dict[str, Any]: ...


#: A workflow document: a mapping, or a builder.
Document = Mapping[str, Any] | SupportsToDict


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    """One API call: what to send, and how to read the answer."""

    request: httpx.Request
    parse: Callable[[httpx.Response], T]


def _version() -> str:
    try:
        return version("graph-runtime")
    except PackageNotFoundError:  # pragma: no cover -- a source tree that was never installed
        return "0"


def _document(document: Document) -> dict[str, Any]:
    if isinstance(document, Mapping):
        return dict(document)
    return document.to_dict()


def _expect(
    model: type[M], resource: Resource, *, also: frozenset[int] = frozenset()
) -> Callable[[httpx.Response], M]:
    """A parser: a 2xx (or ``also``) body as ``model``, anything else as our exception."""

    def parse(response: httpx.Response) -> M:
        if not (response.is_success or response.status_code in also):
            raise error_from_response(response, resource)
        try:
            return model.model_validate_json(response.content)
        except pydantic.ValidationError as exc:
            raise GraphRuntimeError(
                f"unexpected {response.status_code} response, not a {model.__name__}: "
                f"{response.text[:200]!r}"
            ) from exc

    return parse


class _BaseClient:
    """Shared state and request/response logic of ``Client`` and ``AsyncClient``."""

    max_reconnects: int = 5
    """Consecutive failed reconnections before ``stream()`` gives up."""
    reconnect_delay: float = 0.25
    """First backoff in seconds when the server sent no ``retry:``; doubles per failure."""
    max_reconnect_delay: float = 5.0
    """Cap on one backoff."""

    def __init__(self, base_url: str, *, timeout: float | None, token: str | None) -> None:
        self.base_url = str(base_url).rstrip("/")
        self.timeout = httpx.Timeout(timeout)
        self.headers = httpx.Headers(
            {"Accept": "application/json", "User-Agent": f"graph-runtime-sdk/{_version()}"}
        )
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Request:
        merged = self.headers.copy()
        merged.update(headers or {})
        params = {k: v for k, v in (params or {}).items() if v is not None}
        return httpx.Request(
            method,
            self.base_url + path,
            params=params or None,
            json=json,
            headers=merged,
            # Requests built outside httpx.Client.build_request carry no timeout otherwise.
            extensions={"timeout": (timeout or self.timeout).as_dict()},
        )

    # -- executions -----------------------------------------------------------------------------

    def _submit_call(
        self,
        workflow_id: str,
        input: Mapping[str, Any] | None,
        definition: Document | None,
        execution_id: str | None,
        version: int | None,
        priority: int,
        timeout_seconds: float | None,
        metadata: Mapping[str, Any] | None,
    ) -> _Call[ExecutionStatus]:
        fields = {
            "workflow_id": workflow_id,
            "input_data": dict(input or {}),
            "definition": None if definition is None else _document(definition),
            "execution_id": execution_id,
            "version": version,
            "priority": priority,
            "timeout_seconds": timeout_seconds,
            "metadata": dict(metadata or {}),
        }
        body = _validated(ExecutionCreate, fields)
        # A 404 here means the workflow id is not stored.
        return _Call(
            self._request("POST", f"{API}/execute", json=body),
            _expect(ExecutionStatus, "workflow"),
        )

    def _status_call(self, execution_id: str) -> _Call[ExecutionStatus]:
        return _Call(
            self._request("GET", _run_path(execution_id, "status")),
            _expect(ExecutionStatus, "run"),
        )

    def _logs_call(
        self, execution_id: str, *, level: str | None, limit: int, after: int
    ) -> _Call[list[LogEntry]]:
        parse = _expect(LogsResponse, "run")
        return _Call(
            self._request(
                "GET",
                _run_path(execution_id, "logs"),
                params={"level": level, "limit": limit, "after": after},
            ),
            lambda response: parse(response).logs,
        )

    def _steps_call(self, execution_id: str) -> _Call[list[TaskStepResult]]:
        parse = _expect(StepsResponse, "run")

        def steps(response: httpx.Response) -> list[TaskStepResult]:
            raw = parse(response).steps
            try:
                return [TaskStepResult.model_validate(step) for step in raw]
            except pydantic.ValidationError as exc:
                raise GraphRuntimeError(f"unexpected step record: {exc}") from exc

        return _Call(self._request("GET", _run_path(execution_id, "steps")), steps)

    def _control_call(
        self, execution_id: str, action: str, value: Any = None
    ) -> _Call[ExecutionStatus]:
        body = ResumeRequest(value=value).model_dump(mode="json") if action == "resume" else None
        return _Call(
            self._request("POST", _run_path(execution_id, action), json=body),
            _expect(ExecutionStatus, "run"),
        )

    def _events_request(
        self, execution_id: str, *, after: int, resume: bool, read_timeout: float | None
    ) -> httpx.Request:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        params: dict[str, Any] = {}
        if resume:
            headers["Last-Event-ID"] = str(after)  # the standard reconnection handshake
        elif after:
            params["after"] = after
        t = self.timeout
        timeout = httpx.Timeout(connect=t.connect, read=read_timeout, write=t.write, pool=t.pool)
        return self._request(
            "GET",
            _run_path(execution_id, "events"),
            params=params,
            headers=headers,
            timeout=timeout,
        )

    # -- tasks ----------------------------------------------------------------------------------

    def _create_task_call(
        self, request: TaskRequest | None, fields: Mapping[str, Any]
    ) -> _Call[TaskResponse]:
        if request is None:
            body = _validated(TaskRequest, fields)
        elif fields:
            raise TypeError("pass a TaskRequest or keyword fields, not both")
        else:
            body = request.model_dump(mode="json", exclude_none=True)
        return _Call(
            self._request("POST", f"{API}/tasks", json=body), _expect(TaskResponse, "workflow")
        )

    def _task_call(self, method: str, task_id: str) -> _Call[TaskResponse]:
        return _Call(
            self._request(method, f"{API}/tasks/{quote(task_id, safe='')}"),
            _expect(TaskResponse, "run"),
        )

    # -- workflows ------------------------------------------------------------------------------

    def _save_workflow_call(
        self, document: Document, *, workflow_id: str | None
    ) -> _Call[WorkflowOut]:
        return _Call(
            self._request(
                "POST",
                f"{API}/workflows",
                params={"workflow_id": workflow_id},
                json=_document(document),
            ),
            _expect(WorkflowOut, "document"),
        )

    def _list_workflows_call(self) -> _Call[list[WorkflowOut]]:
        parse = _expect(WorkflowList, "workflow")
        return _Call(
            self._request("GET", f"{API}/workflows"),
            lambda response: parse(response).workflows,
        )

    def _get_workflow_call(self, workflow_id: str, version: int | None) -> _Call[WorkflowOut]:
        return _Call(
            self._request(
                "GET",
                f"{API}/workflows/{quote(workflow_id, safe='')}",
                params={"version": version},
            ),
            _expect(WorkflowOut, "workflow"),
        )

    def _validate_call(self, document: Document) -> _Call[ValidationReport]:
        return _Call(
            self._request("POST", f"{API}/workflows/validate", json=_document(document)),
            _expect(ValidationReport, "document"),
        )

    def _health_call(self) -> _Call[Health]:
        # A degraded server answers 503 with a Health body: that is an answer, not an error.
        return _Call(
            self._request("GET", "/healthz"), _expect(Health, "other", also=frozenset({503}))
        )


def _run_path(execution_id: str, action: str) -> str:
    return f"{API}/execute/{quote(execution_id, safe='')}/{action}"


def _validated(model: type[pydantic.BaseModel], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a request body locally, so a typo fails here with the field's path."""
    try:
        return model.model_validate(dict(fields)).model_dump(mode="json", exclude_none=True)
    except pydantic.ValidationError as exc:
        problems = [
            Problem(path="/" + "/".join(str(p) for p in err["loc"]), message=err["msg"])
            for err in exc.errors()
        ]
        raise InputValidationError(
            "invalid request: " + "; ".join(str(p) for p in problems), problems=problems
        ) from exc


def deadline_after(timeout: float | None) -> float | None:
    """A ``time.monotonic()`` deadline ``timeout`` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline``; raises ``TimeoutError`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out waiting for the run")
    return left


def poll_delays(deadline: float | None) -> Callable[[], float]:
    """Backoff for polling a status: 50 ms growing to 1 s, never past ``deadline``."""
    delay = 0.05

    def next_delay() -> float:
        nonlocal delay
        current, delay = delay, min(delay * 1.5, 1.0)
        left = remaining(deadline)
        return current if left is None else min(current, left)

    return next_delay
