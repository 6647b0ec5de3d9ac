"""The LangGraph Server API: runs on threads, stateless runs, and the thread stream.

Creates answer 200 with ``Content-Location``; streams and waits add ``Location`` (where the
SDK rejoins: ``…/stream`` or ``…/join``). Errors found before a stream starts are plain JSON
4xx. A run's stream replays stored events after ``Last-Event-ID`` (a whole number; ``0``,
``-1`` or anything else: from the start), then follows live ones; without the header a join
gets the live tail only, as the reference does.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from server.agent_protocol.background import check_webhook
from server.agent_protocol.models import CancelMany, Run, RunCreate
from server.agent_protocol.protocol import AgentProtocol, ProtocolDep
from server.agent_protocol.responses import locations, run_stream, wait_response
from server.agent_protocol.runs import AP_KEY, Kind, Started
from server.agent_protocol.streaming import parse_stream_modes
from server.agent_protocol.thread_stream import thread_stream
from server.errors import error_responses
from server.routes.agent_protocol import ThreadIdPath, thread_id_of

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["agent protocol"])

RunIdPath = Annotated[str, Path(min_length=1, max_length=64, description="Run UUID.")]
_STREAM_DOC = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "The run's events as SSE.",
    },
    **error_responses(400, 404, 409, 422),
}
_WAIT_DOC = {
    200: {
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "Newlines while the run goes on, then the thread's final values.",
    },
    **error_responses(400, 404, 409, 422),
}


async def _start(
    protocol: AgentProtocol, thread_id: str | None, body: RunCreate, kind: Kind
) -> Started:
    if body.webhook is not None:
        check_webhook(body.webhook)
    started = await protocol.runs.start(thread_id, body, kind)
    protocol.background.finish(started, body.webhook)
    logger.info(
        "protocol run queued",
        extra={"action": "ap_run", "run_id": started.record.run_id, "thread_id": started.thread_id},
    )
    return started


def _heartbeat(request: Request) -> float:
    return float(request.app.state.config.heartbeat_seconds)


def _stream(
    request: Request, protocol: AgentProtocol, started: Started, body: RunCreate
) -> Response:
    return run_stream(
        protocol,
        started.thread_id,
        started.record.run_id,
        modes=started.modes,
        subgraphs=started.subgraphs,
        after=0,
        cancel_on_disconnect=body.on_disconnect == "cancel",
        heartbeat=_heartbeat(request),
        stats=request.app.state.sse_stats,
    )


def _wait(request: Request, protocol: AgentProtocol, started: Started, body: RunCreate) -> Response:
    return wait_response(
        protocol,
        started.thread_id,
        started.record.run_id,
        cancel_on_disconnect=body.on_disconnect == "cancel",
        heartbeat=_heartbeat(request),
    )


def _created(protocol: AgentProtocol, started: Started, response: Response) -> Run:
    run_url = locations(started.thread_id, started.record.run_id, "")["Content-Location"]
    response.headers["Content-Location"] = run_url
    return protocol.runs.view(started.record)


# -- runs on a thread -------------------------------------------------------------------------


@router.post(
    "/threads/{thread_id}/runs",
    response_model=Run,
    summary="Start a run in the background",
    description="200 with the pending run and `Content-Location`. 404 for a missing thread "
    "(unless `if_not_exists: create`), 409 when busy with `multitask_strategy: reject`.",
    responses=error_responses(400, 404, 409, 422),
)
async def create_run(
    thread_id: ThreadIdPath, body: RunCreate, protocol: ProtocolDep, response: Response
) -> Run:
    started = await _start(protocol, thread_id_of(thread_id), body, "create")
    return _created(protocol, started, response)


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_model=None,
    summary="Start a run and stream it",
    description="SSE of the run (`stream_mode`), ended by `end`; `Location` to rejoin.",
    responses=_STREAM_DOC,
)
async def stream_run(
    thread_id: ThreadIdPath, body: RunCreate, protocol: ProtocolDep, request: Request
) -> Response:
    started = await _start(protocol, thread_id_of(thread_id), body, "stream")
    return _stream(request, protocol, started, body)


@router.post(
    "/threads/{thread_id}/runs/wait",
    response_model=None,
    summary="Start a run and wait for it",
    description="The thread's values once the run ends or waits at an interrupt "
    "(`__interrupt__`), or `__error__`; newlines keep the connection alive meanwhile.",
    responses=_WAIT_DOC,
)
async def wait_run(
    thread_id: ThreadIdPath, body: RunCreate, protocol: ProtocolDep, request: Request
) -> Response:
    started = await _start(protocol, thread_id_of(thread_id), body, "wait")
    return _wait(request, protocol, started, body)


@router.get(
    "/threads/{thread_id}/runs",
    response_model=list[Run],
    summary="A thread's runs",
    description="Newest first. 404 for a missing thread.",
    responses=error_responses(404, 422),
)
async def list_runs(
    thread_id: ThreadIdPath,
    protocol: ProtocolDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 10,
    offset: Annotated[int, Query(ge=0, description="Page start.")] = 0,
    status: Annotated[str | None, Query(description="Only runs in this status.")] = None,
) -> list[Run]:
    return await protocol.runs.list(
        thread_id_of(thread_id), limit=limit, offset=offset, status=status
    )


@router.get(
    "/threads/{thread_id}/runs/{run_id}",
    response_model=Run,
    summary="A run",
    description="Its status mapped per DESIGN §3 (a run waiting at an interrupt is `interrupted`).",
    responses=error_responses(404, 422),
)
async def get_run(thread_id: ThreadIdPath, run_id: RunIdPath, protocol: ProtocolDep) -> Run:
    record = await protocol.runs.get(thread_id_of(thread_id), thread_id_of(run_id, "run"))
    return protocol.runs.view(record)


@router.get(
    "/threads/{thread_id}/runs/{run_id}/join",
    response_model=None,
    summary="Wait for a run",
    description="As `/runs/wait`, for a run started before.",
    responses=_WAIT_DOC,
)
async def join_run(
    thread_id: ThreadIdPath, run_id: RunIdPath, protocol: ProtocolDep, request: Request
) -> Response:
    record = await protocol.runs.get(thread_id_of(thread_id), thread_id_of(run_id, "run"))
    return wait_response(
        protocol,
        record.thread_id,
        record.run_id,
        cancel_on_disconnect=False,
        heartbeat=_heartbeat(request),
    )


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_model=None,
    summary="Join a run's stream",
    description="Events after `Last-Event-ID` (0 or -1: all of them), then live ones; "
    "without the header, the live tail. `stream_mode` may repeat, be a JSON array or a "
    "comma list; absent, the run's own modes.",
    responses=_STREAM_DOC,
)
async def join_run_stream(
    thread_id: ThreadIdPath,
    run_id: RunIdPath,
    protocol: ProtocolDep,
    request: Request,
    cancel_on_disconnect: Annotated[
        bool, Query(description="Stop the run if this client goes away.")
    ] = False,
    stream_subgraphs: Annotated[bool | None, Query(description="Subgraph events too.")] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event id.")
    ] = None,
) -> Response:
    record = await protocol.runs.get(thread_id_of(thread_id), thread_id_of(run_id, "run"))
    params = request.query_params
    modes = parse_stream_modes(
        [*params.getlist("stream_mode"), *params.getlist("stream_modes")], "/stream_mode"
    )
    kwargs = (record.metadata.get(AP_KEY) or {}).get("kwargs") or {}
    if not modes:
        modes = list(kwargs.get("stream_mode") or ["values"])
    if last_event_id is None:
        after = await protocol.runtime.store.last_event_id(record.run_id)
    else:
        text = last_event_id.strip()
        after = int(text) if text.isdigit() and len(text) < 19 else 0
    return run_stream(
        protocol,
        record.thread_id,
        record.run_id,
        modes=modes,
        subgraphs=bool(kwargs.get("subgraphs")) if stream_subgraphs is None else stream_subgraphs,
        after=after,
        cancel_on_disconnect=cancel_on_disconnect,
        heartbeat=_heartbeat(request),
        stats=request.app.state.sse_stats,
    )


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    response_model=None,
    status_code=202,
    summary="Cancel a run",
    description="`action=interrupt` stops it (status `interrupted`, steps so far kept); "
    "`rollback` also deletes it and its checkpoints. 202 at once, or with `wait=1` 200 and "
    "the thread's values once it stopped. 409 if it already ended.",
    responses={
        200: {"description": "With wait: the thread's values."},
        **error_responses(404, 409, 422),
    },
)
async def cancel_run(
    thread_id: ThreadIdPath,
    run_id: RunIdPath,
    protocol: ProtocolDep,
    request: Request,
    wait: Annotated[bool, Query(description="Answer once the run stopped.")] = False,
    action: Annotated[
        Literal["interrupt", "rollback"], Query(description="interrupt or rollback.")
    ] = "interrupt",
) -> Response:
    tid, rid = thread_id_of(thread_id), thread_id_of(run_id, "run")
    await protocol.runs.cancel(tid, rid, action)
    if not wait:
        return Response(status_code=202)
    if action == "rollback":
        # The run and its checkpoints are gone: the answer is the thread's state now.
        thread = await protocol.threads.view(await protocol.threads.get(tid))
        return JSONResponse(thread.values or {}, headers={"Location": f"/threads/{tid}"})
    return wait_response(
        protocol, tid, rid, cancel_on_disconnect=False, heartbeat=_heartbeat(request)
    )


@router.delete(
    "/threads/{thread_id}/runs/{run_id}",
    status_code=204,
    summary="Delete a run",
    description="204; 409 while it is pending or running.",
    responses=error_responses(404, 409, 422),
)
async def delete_run(thread_id: ThreadIdPath, run_id: RunIdPath, protocol: ProtocolDep) -> Response:
    await protocol.runs.delete(thread_id_of(thread_id), thread_id_of(run_id, "run"))
    return Response(status_code=204)


# -- stateless runs -----------------------------------------------------------------------


@router.post(
    "/runs",
    response_model=Run,
    summary="Start a stateless run",
    description="On a temporary thread, deleted when the run ends unless `on_completion: keep`.",
    responses=error_responses(400, 404, 422),
)
async def create_stateless_run(body: RunCreate, protocol: ProtocolDep, response: Response) -> Run:
    started = await _start(protocol, None, body, "create")
    return _created(protocol, started, response)


@router.post(
    "/runs/stream",
    response_model=None,
    summary="Stream a stateless run",
    description="As `/threads/{id}/runs/stream`, on a temporary thread.",
    responses=_STREAM_DOC,
)
async def stream_stateless_run(
    body: RunCreate, protocol: ProtocolDep, request: Request
) -> Response:
    started = await _start(protocol, None, body, "stream")
    return _stream(request, protocol, started, body)


@router.post(
    "/runs/wait",
    response_model=None,
    summary="Wait for a stateless run",
    description="As `/threads/{id}/runs/wait`, on a temporary thread.",
    responses=_WAIT_DOC,
)
async def wait_stateless_run(body: RunCreate, protocol: ProtocolDep, request: Request) -> Response:
    started = await _start(protocol, None, body, "wait")
    return _wait(request, protocol, started, body)


@router.post(
    "/runs/cancel",
    status_code=204,
    summary="Cancel several runs",
    description="Those of `thread_id` (optionally `run_ids`), or every run in `status`.",
    responses=error_responses(422),
)
async def cancel_runs(
    protocol: ProtocolDep,
    body: Annotated[CancelMany, Body()],
    action: Annotated[
        Literal["interrupt", "rollback"], Query(description="interrupt or rollback.")
    ] = "interrupt",
) -> Response:
    await protocol.runs.cancel_many(body, action)
    return Response(status_code=204)


@router.get(
    "/threads/{thread_id}/stream",
    response_model=None,
    summary="Join a thread's stream",
    description="Every run of the thread as it runs, each closed by `metadata "
    '{"status": "run_done"}`; follows the thread until the client leaves. Resumes after '
    "`Last-Event-ID`. `stream_mode` (or `stream_modes`): `run_modes` (default), `lifecycle`, "
    "or stream modes.",
    responses=_STREAM_DOC,
)
async def join_thread_stream(
    thread_id: ThreadIdPath,
    protocol: ProtocolDep,
    request: Request,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event id.")
    ] = None,
) -> Response:
    tid = thread_id_of(thread_id)
    await protocol.threads.get(tid)
    params = request.query_params
    values = [v for v in (*params.getlist("stream_mode"), *params.getlist("stream_modes")) if v]
    return thread_stream(
        protocol,
        tid,
        mode_values=values,
        last_event_id=last_event_id,
        heartbeat=_heartbeat(request),
        stats=request.app.state.sse_stats,
    )
