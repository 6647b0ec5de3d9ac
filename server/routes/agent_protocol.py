"""The LangGraph Server API: meta, assistants and threads (runs: ``agent_protocol_runs``).

Paths, bodies and status codes are the ones ``langgraph-sdk`` 0.4.14 and ``RemoteGraph`` use
(agent-protocol.md §1): creates answer 200, deletes 204, list endpoints bare arrays with
``X-Pagination-Total``. Errors carry ``{"detail", "code"}``; the SDK exposes ``code`` as
``APIError.code``. Thread and run ids must be UUIDs (422 otherwise); assistant ids may be UUIDs
or graph (workflow) ids everywhere.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from graph_runtime.errors import InputValidationError, Problem
from server.agent_protocol.assistants import canonical_uuid
from server.agent_protocol.models import (
    Assistant,
    AssistantSearch,
    CheckpointRef,
    GraphSchemas,
    HistoryRequest,
    StateCheckpointRequest,
    StateUpdate,
    StateUpdateResponse,
    Thread,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
    ThreadState,
)
from server.agent_protocol.protocol import ProtocolDep
from server.errors import error_responses
from server.routes.ops import VERSION

__all__ = ["ThreadIdPath", "paginate", "router", "thread_id_of"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["agent protocol"])

AssistantIdPath = Annotated[
    str, Path(min_length=1, max_length=256, description="Assistant UUID or graph id.")
]
ThreadIdPath = Annotated[str, Path(min_length=1, max_length=64, description="Thread UUID.")]


def thread_id_of(value: str, what: str = "thread") -> str:
    """The canonical form of a thread (or run) id from a path or body.

    Raises:
        InputValidationError: (422) it is not a UUID, as the reference server answers.
    """
    canonical = canonical_uuid(value)
    if canonical is None:
        problem = Problem(path=f"/{what}_id", message="must be a UUID")
        raise InputValidationError(f"Invalid {what} ID: must be a UUID", problems=[problem])
    return canonical


def paginate(response: Response, total: int, offset: int, count: int) -> None:
    """Set ``X-Pagination-Total`` (and ``X-Pagination-Next`` when there is more)."""
    response.headers["X-Pagination-Total"] = str(total)
    if offset + count < total:
        response.headers["X-Pagination-Next"] = str(offset + count)


def _xray(value: str) -> int | bool:
    text = value.strip().lower()
    if text in ("", "false", "0", "no"):
        return False
    if text in ("true", "yes"):
        return True
    if text.isdigit():
        return int(text)
    raise InputValidationError("xray must be a boolean or a depth")


# -- meta -----------------------------------------------------------------------------------------


@router.get("/ok", summary="Liveness", description='`{"ok": true}` while the server is up.')
async def ok() -> dict[str, bool]:
    return {"ok": True}


def _langgraph_version() -> str:
    try:
        return version("langgraph")
    except PackageNotFoundError:  # pragma: no cover -- langgraph is a dependency
        return "unknown"


@router.get(
    "/info",
    summary="Server info",
    description="Version and feature flags, as LangGraph Studio and agent-chat-ui probe them.",
)
async def info() -> dict[str, Any]:
    return {
        "version": VERSION,
        "langgraph_py_version": _langgraph_version(),
        "flags": {"assistants": True, "crons": False, "langsmith": False},
        "host": {"kind": "self-hosted", "project_id": None, "revision_id": None},
    }


# -- assistants -------------------------------------------------------------------------------


@router.post(
    "/assistants/search",
    response_model=list[Assistant],
    summary="Search assistants",
    description="One assistant per stored workflow; `X-Pagination-Total` has the match count.",
    responses=error_responses(422),
)
async def search_assistants(
    protocol: ProtocolDep,
    response: Response,
    body: Annotated[AssistantSearch | None, Body()] = None,
) -> list[Assistant]:
    query = body or AssistantSearch()
    found, total = await protocol.assistants.search(query)
    paginate(response, total, query.offset, len(found))
    return found


@router.get(
    "/assistants/{assistant_id}",
    response_model=Assistant,
    summary="Get an assistant",
    description="By assistant UUID or graph (workflow) id.",
    responses=error_responses(404),
)
async def get_assistant(assistant_id: AssistantIdPath, protocol: ProtocolDep) -> Assistant:
    assistants = protocol.assistants
    return await assistants.assistant(await assistants.resolve(assistant_id))


@router.get(
    "/assistants/{assistant_id}/graph",
    summary="An assistant's graph",
    description="Nodes and edges of the compiled LangGraph graph (`RemoteGraph.get_graph`).",
    responses=error_responses(404, 422),
)
async def get_assistant_graph(
    assistant_id: AssistantIdPath,
    protocol: ProtocolDep,
    xray: Annotated[str, Query(description="true, false or a depth.")] = "false",
) -> dict[str, Any]:
    assistants = protocol.assistants
    return assistants.graph(await assistants.resolve(assistant_id), _xray(xray))


@router.get(
    "/assistants/{assistant_id}/schemas",
    response_model=GraphSchemas,
    summary="An assistant's schemas",
    description="JSON Schemas of the workflow's input, output and state.",
    responses=error_responses(404),
)
async def get_assistant_schemas(
    assistant_id: AssistantIdPath, protocol: ProtocolDep
) -> GraphSchemas:
    assistants = protocol.assistants
    return assistants.schemas(await assistants.resolve(assistant_id))


# -- threads ----------------------------------------------------------------------------------


@router.post(
    "/threads",
    response_model=Thread,
    summary="Create a thread",
    description="200 with the thread; 409 if `thread_id` is taken and `if_exists` is `raise`.",
    responses=error_responses(404, 409, 422),
)
async def create_thread(
    protocol: ProtocolDep, body: Annotated[ThreadCreate | None, Body()] = None
) -> Thread:
    body = body or ThreadCreate()
    if body.thread_id is not None:
        body = body.model_copy(update={"thread_id": thread_id_of(body.thread_id)})
    return await protocol.threads.create_view(body)


@router.post(
    "/threads/count",
    summary="Count threads",
    description="How many threads match, with the search filters.",
    responses=error_responses(422),
)
async def count_threads(
    protocol: ProtocolDep, body: Annotated[ThreadSearch | None, Body()] = None
) -> int:
    query = (body or ThreadSearch()).model_copy(update={"limit": 1, "offset": 0})
    _, total = await protocol.threads.search(query)
    return total


@router.post(
    "/threads/search",
    response_model=list[Thread],
    summary="Search threads",
    description="By metadata, values, ids and status; `X-Pagination-Total` has the count.",
    responses=error_responses(422),
)
async def search_threads(
    protocol: ProtocolDep,
    response: Response,
    body: Annotated[ThreadSearch | None, Body()] = None,
) -> list[Thread]:
    query = body or ThreadSearch()
    if query.ids is not None:
        ids = [canonical_uuid(i) for i in query.ids]
        query = query.model_copy(update={"ids": [i for i in ids if i is not None]})
    found, total = await protocol.threads.search(query)
    paginate(response, total, query.offset, len(found))
    return found


@router.get(
    "/threads/{thread_id}",
    response_model=Thread,
    summary="Get a thread",
    description="The thread with its status, values and pending interrupts.",
    responses=error_responses(404, 422),
)
async def get_thread(thread_id: ThreadIdPath, protocol: ProtocolDep) -> Thread:
    threads = protocol.threads
    return await threads.view(await threads.get(thread_id_of(thread_id)))


@router.patch(
    "/threads/{thread_id}",
    response_model=Thread,
    summary="Update a thread's metadata",
    description="Merges `metadata` into the thread's.",
    responses=error_responses(404, 422),
)
async def patch_thread(thread_id: ThreadIdPath, body: ThreadPatch, protocol: ProtocolDep) -> Thread:
    threads = protocol.threads
    return await threads.view(await threads.patch(thread_id_of(thread_id), body.metadata))


@router.delete(
    "/threads/{thread_id}",
    status_code=204,
    summary="Delete a thread",
    description="Stops its runs, deletes them, its checkpoints and the thread (204).",
    responses=error_responses(404, 422),
)
async def delete_thread(thread_id: ThreadIdPath, protocol: ProtocolDep) -> Response:
    await protocol.threads.delete(thread_id_of(thread_id))
    return Response(status_code=204)


@router.get(
    "/threads/{thread_id}/state",
    response_model=ThreadState,
    summary="A thread's state",
    description="Values, next nodes, tasks and interrupts at the head checkpoint.",
    responses=error_responses(404, 422),
)
async def get_thread_state(
    thread_id: ThreadIdPath,
    protocol: ProtocolDep,
    subgraphs: Annotated[bool, Query(description="Include subgraph states.")] = False,
) -> dict[str, Any]:
    return await protocol.threads.state(thread_id_of(thread_id), subgraphs=subgraphs)


@router.get(
    "/threads/{thread_id}/state/{checkpoint_id}",
    response_model=ThreadState,
    summary="A thread's state at a checkpoint",
    description="As `GET /threads/{id}/state`, at an older checkpoint.",
    responses=error_responses(404, 422),
)
async def get_thread_state_at(
    thread_id: ThreadIdPath,
    checkpoint_id: Annotated[str, Path(max_length=128, description="The checkpoint id.")],
    protocol: ProtocolDep,
    subgraphs: Annotated[bool, Query(description="Include subgraph states.")] = False,
) -> dict[str, Any]:
    ref = CheckpointRef(checkpoint_id=checkpoint_id)
    return await protocol.threads.state(thread_id_of(thread_id), ref, subgraphs=subgraphs)


@router.post(
    "/threads/{thread_id}/state/checkpoint",
    response_model=ThreadState,
    summary="A thread's state at a checkpoint (POST)",
    description="What `RemoteGraph.get_state` calls; without a checkpoint id: the head.",
    responses=error_responses(404, 422),
)
async def post_thread_state_checkpoint(
    thread_id: ThreadIdPath, body: StateCheckpointRequest, protocol: ProtocolDep
) -> dict[str, Any]:
    return await protocol.threads.state(
        thread_id_of(thread_id), body.checkpoint, subgraphs=body.subgraphs
    )


@router.post(
    "/threads/{thread_id}/state",
    response_model=StateUpdateResponse,
    summary="Update a thread's state",
    description="Writes a checkpoint with `values` applied as `as_node` (forking from "
    "`checkpoint` when given). 400 before the thread has a graph; 409 while a run is active.",
    responses=error_responses(400, 404, 409, 422),
)
async def update_thread_state(
    thread_id: ThreadIdPath, body: StateUpdate, protocol: ProtocolDep
) -> StateUpdateResponse:
    return await protocol.threads.update_state(thread_id_of(thread_id), body)


@router.post(
    "/threads/{thread_id}/history",
    response_model=list[ThreadState],
    summary="A thread's history",
    description="Past states, newest first.",
    responses=error_responses(404, 422),
)
async def thread_history(
    thread_id: ThreadIdPath,
    protocol: ProtocolDep,
    body: Annotated[HistoryRequest | None, Body()] = None,
) -> list[dict[str, Any]]:
    # The reference answers one state when the body has no limit; the SDK always sends one.
    query = body or HistoryRequest(limit=1)
    return await protocol.threads.history(thread_id_of(thread_id), query)


@router.get(
    "/threads/{thread_id}/history",
    response_model=list[ThreadState],
    summary="A thread's history (GET)",
    description="As the POST form, with `limit` and `before` as query parameters.",
    responses=error_responses(404, 422),
)
async def thread_history_get(
    thread_id: ThreadIdPath,
    protocol: ProtocolDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 10,
    before: Annotated[str | None, Query(description="Older than this checkpoint.")] = None,
) -> list[dict[str, Any]]:
    query = HistoryRequest(limit=limit, before=before)
    return await protocol.threads.history(thread_id_of(thread_id), query)
