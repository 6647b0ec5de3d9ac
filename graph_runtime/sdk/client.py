"""HTTP clients of the graph-runtime server: ``Client`` (blocking) and ``AsyncClient``.

::

    with Client("http://127.0.0.1:8000") as client:
        run = client.submit("routing", {"ticket": "refund please"})
        for event in client.stream(run.execution_id):
            print(event.id, event.type, event.data)
        print(client.wait(run.execution_id).result)

Both classes only send: ``_BaseClient`` builds every request and parses every response, and
``EventStreamState`` makes ``stream()``'s reconnection decisions. Errors come back as the
server's exceptions (``RunNotFound``, ``InvalidTransition``, ``WorkflowValidationError``...);
network failures stay ``httpx.TransportError`` (``stream()`` reconnects instead).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from contextlib import aclosing, closing
from typing import Any, Self, TypeVar

import httpx

from graph_runtime.api_models import (
    ExecutionStatus,
    Health,
    LogEntry,
    ValidationReport,
    WorkflowOut,
)
from graph_runtime.errors import GraphRuntimeError
from graph_runtime.models import Event, TaskRequest, TaskResponse, TaskStepResult
from graph_runtime.sdk._base import (
    DEFAULT_BASE_URL,
    SETTLED,
    Document,
    _BaseClient,
    _Call,
    deadline_after,
    poll_delays,
)
from graph_runtime.sdk._stream import EventStreamState, wakes_waiter

__all__ = ["AsyncClient", "Client"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Client(_BaseClient):
    """A blocking client of the graph-runtime HTTP API.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000`` (a path prefix is kept).
        timeout: Seconds for connecting, each read and each write; None for no limit.
        token: Sent as ``Authorization: Bearer <token>``.
        transport: An httpx transport (tests, proxies, retries); the default opens sockets.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | None = 30.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, token=token)
        self._http = httpx.Client(transport=transport, timeout=self.timeout)

    def _send(self, call: _Call[T]) -> T:
        return call.parse(self._http.send(call.request))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(
        self,
        workflow_id: str,
        input: Mapping[str, Any] | None = None,
        *,
        definition: Document | None = None,
        execution_id: str | None = None,
        version: int | None = None,
        priority: int = 5,
        timeout_seconds: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ExecutionStatus:
        """Start a run (idempotent on ``execution_id``); ``definition`` stores a new version.

        Raises:
            WorkflowNotFound: ``workflow_id`` is not stored and no ``definition`` was given.
            WorkflowValidationError: ``definition`` is invalid (``problems`` say where).
            InputValidationError: a field is out of range (checked before sending).
        """
        options = (priority, timeout_seconds, metadata)
        return self._send(
            self._submit_call(workflow_id, input, definition, execution_id, version, *options)
        )

    def status(self, execution_id: str) -> ExecutionStatus:
        """A run's status (``RunNotFound`` if there is no such run)."""
        return self._send(self._status_call(execution_id))

    def logs(
        self, execution_id: str, *, level: str | None = None, limit: int = 100, after: int = 0
    ) -> list[LogEntry]:
        """A page of a run's log; ``level`` is a minimum, ``after`` the last id already read."""
        return self._send(self._logs_call(execution_id, level=level, limit=limit, after=after))

    def steps(self, execution_id: str) -> list[TaskStepResult]:
        """A run's step records, in order."""
        return self._send(self._steps_call(execution_id))

    def pause(self, execution_id: str) -> ExecutionStatus:
        """Pause a run at its next step boundary (``InvalidTransition`` if it cannot)."""
        return self._send(self._control_call(execution_id, "pause"))

    def resume(self, execution_id: str, value: Any = None) -> ExecutionStatus:
        """Continue a paused run; ``value`` answers a waiting ``human`` node."""
        return self._send(self._control_call(execution_id, "resume", value))

    def stop(self, execution_id: str) -> ExecutionStatus:
        """Stop a run (cancel it if it has not started)."""
        return self._send(self._control_call(execution_id, "stop"))

    def wait(self, execution_id: str, *, timeout: float | None = None) -> ExecutionStatus:
        """Block until the run finishes or waits (paused); return its status.

        Follows the event stream, and polls the status if the stream is unavailable.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        deadline = deadline_after(timeout)
        status = self.status(execution_id)
        if status.status in SETTLED:
            return status
        try:
            with closing(self._events(execution_id, 0, deadline)) as events:
                for event in events:
                    if wakes_waiter(event):
                        status = self.status(execution_id)
                        if status.status in SETTLED:
                            return status
        except (httpx.TransportError, GraphRuntimeError) as exc:
            logger.info(
                "event stream failed (%r); polling the status",
                exc,
                extra={"action": "wait_poll", "run_id": execution_id},
            )
        next_delay = poll_delays(deadline)
        while (status := self.status(execution_id)).status not in SETTLED:
            time.sleep(next_delay())
        return status

    def stream(self, execution_id: str, *, after: int = 0) -> Iterator[Event]:
        """The run's events after ``after``, stored then live, up to and with the ``end`` event.

        A paused run's stream stays open. A dropped connection is resumed with
        ``Last-Event-ID`` (bounded retries with backoff, honouring the server's ``retry:``); no
        event is yielded twice.
        """
        return self._events(execution_id, after, None)

    def _events(
        self, execution_id: str, after: int, deadline: float | None
    ) -> Generator[Event, None, None]:
        state = EventStreamState(self, execution_id, after, deadline)
        while True:
            error: Exception | None = None
            try:
                response = self._http.send(state.request(), stream=True)
                try:
                    if response.is_success:
                        for chunk in response.iter_bytes():
                            yield from state.feed(chunk)
                            if state.done:
                                return
                    else:
                        response.read()
                        error = state.rejected(response)
                finally:
                    response.close()
            except httpx.TransportError as exc:
                error = exc
            time.sleep(state.backoff(error))

    def create_task(self, request: TaskRequest | None = None, /, **fields: Any) -> TaskResponse:
        """Start a task: a ``TaskRequest``, or its fields as keywords (``task_type=...``)."""
        return self._send(self._create_task_call(request, fields))

    def get_task(self, task_id: str) -> TaskResponse:
        """A task's status and, once finished, its result."""
        return self._send(self._task_call("GET", task_id))

    def delete_task(self, task_id: str) -> TaskResponse:
        """Cancel or stop a task."""
        return self._send(self._task_call("DELETE", task_id))

    def save_workflow(self, document: Document, *, workflow_id: str | None = None) -> WorkflowOut:
        """Validate and store a workflow version (``WorkflowValidationError`` if invalid)."""
        return self._send(self._save_workflow_call(document, workflow_id=workflow_id))

    def list_workflows(self) -> list[WorkflowOut]:
        """The latest version of every stored workflow."""
        return self._send(self._list_workflows_call())

    def get_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowOut:
        """A stored workflow version, the latest by default."""
        return self._send(self._get_workflow_call(workflow_id, version))

    def validate(self, document: Document) -> ValidationReport:
        """Every problem of a document, without storing it."""
        return self._send(self._validate_call(document))

    def health(self) -> Health:
        """The server's health."""
        return self._send(self._health_call())


class AsyncClient(_BaseClient):
    """The asyncio twin of ``Client``: the same arguments and methods, awaited.

    ``transport``, if given, is an ``httpx.AsyncBaseTransport``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | None = 30.0,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, token=token)
        self._http = httpx.AsyncClient(transport=transport, timeout=self.timeout)

    async def _send(self, call: _Call[T]) -> T:
        return call.parse(await self._http.send(call.request))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def submit(
        self,
        workflow_id: str,
        input: Mapping[str, Any] | None = None,
        *,
        definition: Document | None = None,
        execution_id: str | None = None,
        version: int | None = None,
        priority: int = 5,
        timeout_seconds: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ExecutionStatus:
        """See ``Client.submit``."""
        options = (priority, timeout_seconds, metadata)
        return await self._send(
            self._submit_call(workflow_id, input, definition, execution_id, version, *options)
        )

    async def status(self, execution_id: str) -> ExecutionStatus:
        """See ``Client.status``."""
        return await self._send(self._status_call(execution_id))

    async def logs(
        self, execution_id: str, *, level: str | None = None, limit: int = 100, after: int = 0
    ) -> list[LogEntry]:
        """See ``Client.logs``."""
        return await self._send(
            self._logs_call(execution_id, level=level, limit=limit, after=after)
        )

    async def steps(self, execution_id: str) -> list[TaskStepResult]:
        """See ``Client.steps``."""
        return await self._send(self._steps_call(execution_id))

    async def pause(self, execution_id: str) -> ExecutionStatus:
        """See ``Client.pause``."""
        return await self._send(self._control_call(execution_id, "pause"))

    async def resume(self, execution_id: str, value: Any = None) -> ExecutionStatus:
        """See ``Client.resume``."""
        return await self._send(self._control_call(execution_id, "resume", value))

    async def stop(self, execution_id: str) -> ExecutionStatus:
        """See ``Client.stop``."""
        return await self._send(self._control_call(execution_id, "stop"))

    async def wait(self, execution_id: str, *, timeout: float | None = None) -> ExecutionStatus:
        """See ``Client.wait``."""
        deadline = deadline_after(timeout)
        status = await self.status(execution_id)
        if status.status in SETTLED:
            return status
        try:
            async with aclosing(self._events(execution_id, 0, deadline)) as events:
                async for event in events:
                    if wakes_waiter(event):
                        status = await self.status(execution_id)
                        if status.status in SETTLED:
                            return status
        except (httpx.TransportError, GraphRuntimeError) as exc:
            logger.info(
                "event stream failed (%r); polling the status",
                exc,
                extra={"action": "wait_poll", "run_id": execution_id},
            )
        next_delay = poll_delays(deadline)
        while (status := await self.status(execution_id)).status not in SETTLED:
            await asyncio.sleep(next_delay())
        return status

    def stream(self, execution_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """See ``Client.stream``; use with ``async for``."""
        return self._events(execution_id, after, None)

    async def _events(
        self, execution_id: str, after: int, deadline: float | None
    ) -> AsyncGenerator[Event, None]:
        state = EventStreamState(self, execution_id, after, deadline)
        while True:
            error: Exception | None = None
            try:
                response = await self._http.send(state.request(), stream=True)
                try:
                    if response.is_success:
                        async for chunk in response.aiter_bytes():
                            for event in state.feed(chunk):
                                yield event
                            if state.done:
                                return
                    else:
                        await response.aread()
                        error = state.rejected(response)
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:
                error = exc
            await asyncio.sleep(state.backoff(error))

    async def create_task(
        self, request: TaskRequest | None = None, /, **fields: Any
    ) -> TaskResponse:
        """See ``Client.create_task``."""
        return await self._send(self._create_task_call(request, fields))

    async def get_task(self, task_id: str) -> TaskResponse:
        """See ``Client.get_task``."""
        return await self._send(self._task_call("GET", task_id))

    async def delete_task(self, task_id: str) -> TaskResponse:
        """See ``Client.delete_task``."""
        return await self._send(self._task_call("DELETE", task_id))

    async def save_workflow(
        self, document: Document, *, workflow_id: str | None = None
    ) -> WorkflowOut:
        """See ``Client.save_workflow``."""
        return await self._send(self._save_workflow_call(document, workflow_id=workflow_id))

    async def list_workflows(self) -> list[WorkflowOut]:
        """See ``Client.list_workflows``."""
        return await self._send(self._list_workflows_call())

    async def get_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowOut:
        """See ``Client.get_workflow``."""
        return await self._send(self._get_workflow_call(workflow_id, version))

    async def validate(self, document: Document) -> ValidationReport:
        """See ``Client.validate``."""
        return await self._send(self._validate_call(document))

    async def health(self) -> Health:
        """See ``Client.health``."""
        return await self._send(self._health_call())
