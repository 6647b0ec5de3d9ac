"""The FastAPI application around one ``Runtime``.

::

    app = create_app(config=RuntimeConfig(db="runs.db", workflows="flows/"))

The lifespan opens the runtime (unless one is given, already open), stores every ``*.json`` of
``config.workflows``, and closes the runtime on shutdown, which drains every run at its next
superstep boundary so the next start resumes it. :func:`begin_shutdown` ends the event streams
first: the server waits for open connections before it runs the lifespan's shutdown.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph_runtime.api_models import ErrorBody
from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import GraphRuntimeError
from graph_runtime.models import ErrorCode
from graph_runtime.runtime import Runtime
from server.agent_protocol import AgentProtocol
from server.errors import error_response, error_responses, install_error_handlers
from server.metrics import Metrics
from server.routes import ROUTERS
from server.routes.ops import VERSION
from server.sse import StreamStats

__all__ = ["BodyLimitMiddleware", "begin_shutdown", "create_app", "load_workflow_dir"]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Durable runs of LangGraph workflows described in JSON.

* `/api/v1/execute`: start a run, follow its status, log, steps and events (SSE), pause,
  resume and stop it.
* `/api/v1/tasks`: the same runs as background tasks.
* `/api/v1/workflows`: validate and store workflow documents (versioned).
* `/assistants`, `/threads`, `/runs`: the LangGraph Server API, so the official `langgraph-sdk`
  client and `RemoteGraph` work unchanged (one assistant per stored workflow).

Every error answers an `ErrorBody` with an error code (E001-E007) and, for invalid input, every
problem located by a JSON pointer.
"""


def create_app(runtime: Runtime | None = None, *, config: RuntimeConfig | None = None) -> FastAPI:
    """The HTTP app.

    Args:
        runtime: an open runtime to serve (the caller closes it); None: the app opens one
            from ``config`` at startup and closes it at shutdown.
        config: settings; defaults to the runtime's, else to ``RuntimeConfig()`` (env).
    """
    if config is None:
        config = runtime.config if runtime is not None else RuntimeConfig()
    settings = config

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            rt = runtime
            if rt is None:
                rt = await stack.enter_async_context(Runtime(config=settings))
            if settings.workflows is not None:
                await load_workflow_dir(rt, settings.workflows)
            app.state.runtime = rt
            app.state.metrics.attach(rt.bus)
            stack.callback(app.state.metrics.detach)
            # Closed before the runtime (LIFO): its webhook and disconnect tasks go first.
            app.state.agent_protocol = AgentProtocol(rt)
            stack.push_async_callback(app.state.agent_protocol.aclose)
            logger.info("server ready", extra={"action": "startup", "db": str(rt.config.db)})
            yield

    app = FastAPI(
        title="graph-runtime",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=error_responses(500),
    )
    app.state.config = settings
    app.state.metrics = Metrics()
    app.state.sse_stats = StreamStats()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    return app


def begin_shutdown(app: FastAPI) -> None:
    """End every event stream now, before the server waits for connections to close.

    Clients reconnect with ``Last-Event-ID`` to the next process and miss nothing.
    """
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is not None:
        runtime.bus.close_all()


async def load_workflow_dir(runtime: Runtime, folder: Path) -> int:
    """Store every ``*.json`` of ``folder``; a bad file is logged and skipped.

    Returns:
        How many documents were stored (or already stored unchanged).
    """
    if not folder.is_dir():
        logger.error("workflow folder %s does not exist", folder, extra={"action": "load"})
        return 0
    loaded = 0
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            stored = await runtime.save_workflow(document, workflow_id=path.stem)
        except GraphRuntimeError as exc:
            # A document that names a model or tool this server lacks is not an outage:
            # the rest load, and the message says what to configure.
            logger.warning("skipped workflow %s: %s", path, exc.message, extra={"action": "load"})
        except (OSError, ValueError, RecursionError) as exc:
            logger.error("skipped workflow %s: %s", path, exc, extra={"action": "load"})
        else:
            loaded += 1
            logger.info(
                "loaded workflow %s v%d from %s",
                stored.workflow_id,
                stored.version,
                path,
                extra={"action": "load", "workflow_id": stored.workflow_id},
            )
    return loaded


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over {limit} bytes")


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 (an ``ErrorBody``).

    A declared ``Content-Length`` over the limit is refused before the app runs; a chunked or
    lying body is counted as it streams in, and the read that crosses the limit raises.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPExceptions from body reads; the handler answers.
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = ErrorBody(
            detail=f"the request body is over {self.max_bytes} bytes",
            code=ErrorCode.VALIDATION_ERROR,
        )
        # Connection: close, since the unread rest of the body cannot be skipped safely.
        await error_response(413, body, headers={"Connection": "close"})(scope, receive, send)
