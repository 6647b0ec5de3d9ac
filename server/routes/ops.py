"""Operations: ``/healthz`` for load balancers, ``/metrics`` for Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from fastapi import APIRouter, Request, Response

from graph_runtime.api_models import Health
from server.metrics import CONTENT_TYPE
from server.routes._common import RuntimeDep

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

_PROBE_SECONDS = 1.0  # how long /healthz waits for its check of a refusing database


def _version() -> str:
    try:
        return version("graph-runtime")
    except PackageNotFoundError:  # pragma: no cover -- running from a source tree
        return "0+unknown"


VERSION = _version()


@router.get(
    "/healthz",
    response_model=Health,
    summary="Health",
    description="`ok` with the queue and active run counts; `degraded` (503) when the "
    "database cannot be read or refuses writes (locked past its timeout, full, read-only), "
    "with the rows waiting in the write-failure journal. Runs caught by an outage wait and "
    "resume from their last checkpoint once the database takes writes again.",
    responses={503: {"model": Health, "description": "Storage is degraded."}},
)
async def healthz(runtime: RuntimeDep, response: Response) -> Health:
    status: Literal["ok", "degraded"] = "ok"
    error: str | None = None
    store = runtime.store
    try:
        await store.list_runs(limit=1)
    except Exception as exc:
        logger.exception("health check: the store failed", extra={"action": "healthz"})
        error = f"the store cannot be read: {exc}"
    health = store.health()
    if error is None and not health.ok:
        # The last write was refused, or rows wait in the journal: try one empty write
        # (it replays the journal first), briefly, so that the answer is current even if
        # nothing else has written since the cause went away.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(store.probe()), _PROBE_SECONDS)
        health = store.health()
    if error is None and not health.ok:
        error = health.error or f"{health.journaled} journaled rows wait for the database"
    if error is not None:
        status = "degraded"
        response.status_code = 503
    manager = runtime.manager
    return Health(
        status=status,
        active_runs=manager.active_count,
        queue_depth=manager.queue_depth,
        version=VERSION,
        writable=health.writable,
        journaled=health.journaled,
        error=error,
    )


@router.get(
    "/metrics",
    response_model=None,
    response_class=Response,
    summary="Prometheus metrics",
    description="Runs by status, queue depth, active runs, a step duration histogram, the "
    "success ratio and open event streams, in the Prometheus text format 0.0.4.",
    responses={
        200: {
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
            "description": "The exposition text.",
        }
    },
)
async def metrics(runtime: RuntimeDep, request: Request) -> Response:
    state = request.app.state
    text = await state.metrics.render(runtime, sse_streams=state.sse_stats.open)
    return Response(text, media_type=CONTENT_TYPE)
