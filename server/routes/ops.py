"""Operations: ``/healthz`` for load balancers, ``/metrics`` for Prometheus."""

from __future__ import annotations

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
    description="`ok` with the queue and active run counts; `degraded` (503) when the store "
    "cannot be read.",
    responses={503: {"model": Health, "description": "The store cannot be read."}},
)
async def healthz(runtime: RuntimeDep, response: Response) -> Health:
    status: Literal["ok", "degraded"] = "ok"
    try:
        await runtime.store.list_runs(limit=1)
    except Exception:
        logger.exception("health check: the store failed", extra={"action": "healthz"})
        status = "degraded"
        response.status_code = 503
    manager = runtime.manager
    return Health(
        status=status,
        active_runs=manager.active_count,
        queue_depth=manager.queue_depth,
        version=VERSION,
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
