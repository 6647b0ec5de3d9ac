"""Request and response bodies of the LangGraph Server API ("Agent Protocol") subset.

Field names and defaults follow what ``langgraph-sdk`` 0.4.14 sends and reads (see
``agent-protocol.md`` §1). Request bodies ignore fields they do not know: newer SDKs add
fields, and LangSmith-only ones (``feedback_keys``, ``langsmith_tracer``) have no meaning here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Assistant",
    "AssistantSearch",
    "CancelMany",
    "CheckpointRef",
    "CommandBody",
    "GraphSchemas",
    "HistoryRequest",
    "MultitaskStrategy",
    "Run",
    "RunCreate",
    "StateCheckpointRequest",
    "StateUpdate",
    "StateUpdateResponse",
    "Thread",
    "ThreadCreate",
    "ThreadPatch",
    "ThreadSearch",
    "ThreadState",
]

MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
SortOrder = Literal["asc", "desc"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CheckpointRef(_Request):
    """A checkpoint of a thread, as the SDK names one."""

    thread_id: str | None = Field(default=None, description="The thread (the path's if absent).")
    checkpoint_ns: str = Field(default="", description="Namespace; empty for the root graph.")
    checkpoint_id: str | None = Field(default=None, description="The checkpoint; head if absent.")
    checkpoint_map: dict[str, Any] | None = Field(
        default=None, description="Checkpoint ids of parent namespaces (accepted, unused)."
    )


# -- assistants -------------------------------------------------------------------------------


class Assistant(BaseModel):
    """One assistant: a stored workflow, served as a LangGraph graph."""

    assistant_id: str = Field(description="uuid5 of the graph id (deterministic).")
    graph_id: str = Field(description="The workflow id.")
    config: dict[str, Any] = Field(default_factory=dict, description="Always empty.")
    context: dict[str, Any] = Field(default_factory=dict, description="Always empty.")
    metadata: dict[str, Any] = Field(description="`created_by: system`.")
    name: str = Field(description="The workflow's name, else its id.")
    description: str | None = Field(default=None, description="The workflow's description.")
    version: int = Field(description="The latest stored version of the workflow.")
    created_at: dt.datetime = Field(description="When the first version was stored.")
    updated_at: dt.datetime = Field(description="When the latest version was stored.")


class AssistantSearch(_Request):
    """``POST /assistants/search``."""

    metadata: dict[str, Any] | None = Field(default=None, description="Metadata to match.")
    graph_id: str | None = Field(default=None, description="Only this workflow.")
    name: str | None = Field(default=None, description="Name contains this (case-insensitive).")
    limit: int = Field(default=10, ge=1, le=1000, description="Page size.")
    offset: int = Field(default=0, ge=0, description="Page start.")
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = Field(
        default=None, description="Sort key (default: created_at)."
    )
    sort_order: SortOrder | None = Field(default=None, description="Default: desc.")
    select: list[str] | None = Field(default=None, description="Only these fields.")


class GraphSchemas(BaseModel):
    """``GET /assistants/{id}/schemas``: JSON Schemas of the workflow (null when unknown)."""

    graph_id: str = Field(description="The workflow id.")
    input_schema: dict[str, Any] | None = Field(description="Its input node's schema.")
    output_schema: dict[str, Any] | None = Field(description="Keys its output nodes select.")
    state_schema: dict[str, Any] | None = Field(description="Its state fields.")
    config_schema: dict[str, Any] | None = Field(description="Always null.")
    context_schema: dict[str, Any] | None = Field(description="Always null.")


# -- threads ----------------------------------------------------------------------------------


class Thread(BaseModel):
    """A thread: one LangGraph thread of a workflow, outliving its runs."""

    thread_id: str = Field(description="UUID.")
    created_at: dt.datetime = Field(description="When it was created.")
    updated_at: dt.datetime = Field(description="Last change (runs, metadata, state).")
    state_updated_at: dt.datetime | None = Field(description="Time of the newest checkpoint.")
    metadata: dict[str, Any] = Field(description="Client metadata plus graph_id/assistant_id.")
    status: Literal["idle", "busy", "interrupted", "error"] = Field(
        description="busy: a run is pending or running; interrupted: waiting at an interrupt "
        "or breakpoint, or its last run was cancelled; error: its last run failed."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Always empty.")
    values: Any = Field(description="The state at the head checkpoint (null before any run).")
    error: dict[str, Any] | None = Field(default=None, description="Why its last run failed.")
    interrupts: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="Pending interrupts by task id."
    )


class ThreadCreate(_Request):
    """``POST /threads``."""

    thread_id: str | None = Field(default=None, description="UUID; generated if absent.")
    metadata: dict[str, Any] | None = Field(default=None, description="Client metadata.")
    if_exists: Literal["raise", "do_nothing"] = Field(
        default="raise", description="raise: 409 for a taken id; do_nothing: return it."
    )
    graph_id: str | None = Field(default=None, description="Bind the thread to this workflow.")
    ttl: Any = Field(default=None, description="Accepted and ignored (threads are kept).")
    supersteps: list[dict[str, Any]] | None = Field(
        default=None, description="State updates to apply at creation (needs graph_id)."
    )


class ThreadPatch(_Request):
    """``PATCH /threads/{id}``: merge metadata."""

    metadata: dict[str, Any] = Field(default_factory=dict, description="Keys to set.")
    ttl: Any = Field(default=None, description="Accepted and ignored (threads are kept).")


class ThreadSearch(_Request):
    """``POST /threads/search``."""

    metadata: dict[str, Any] | None = Field(default=None, description="Metadata to match.")
    values: dict[str, Any] | None = Field(default=None, description="State values to match.")
    ids: list[str] | None = Field(default=None, description="Only these threads.")
    status: Literal["idle", "busy", "interrupted", "error"] | None = Field(
        default=None, description="Only threads in this status."
    )
    limit: int = Field(default=10, ge=1, le=1000, description="Page size.")
    offset: int = Field(default=0, ge=0, description="Page start.")
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] | None = Field(
        default=None, description="Sort key (default: created_at)."
    )
    sort_order: SortOrder | None = Field(default=None, description="Default: desc.")
    select: list[str] | None = Field(default=None, description="Only these fields.")


class ThreadState(BaseModel):
    """A thread's state at one checkpoint (``StateSnapshot`` on the wire)."""

    values: Any = Field(description="State values (internal `__` keys left out).")
    next: list[str] = Field(description="Nodes that run next; empty when done.")
    tasks: list[dict[str, Any]] = Field(description="Pending tasks with their interrupts.")
    metadata: dict[str, Any] = Field(description="Checkpoint metadata (source, step, run_id...).")
    created_at: str | None = Field(description="When the checkpoint was written.")
    checkpoint: dict[str, Any] = Field(description="{thread_id, checkpoint_ns, checkpoint_id}.")
    parent_checkpoint: dict[str, Any] | None = Field(description="The previous checkpoint.")
    interrupts: list[dict[str, Any]] = Field(description="Pending interrupts of all tasks.")
    checkpoint_id: str | None = Field(description="Deprecated copy of checkpoint.checkpoint_id.")
    parent_checkpoint_id: str | None = Field(description="Deprecated copy of the parent's id.")


class StateUpdate(_Request):
    """``POST /threads/{id}/state``."""

    values: Any = Field(default=None, description="The update (dict, or list of dicts).")
    as_node: str | None = Field(default=None, description="Apply it as if this node wrote it.")
    checkpoint: CheckpointRef | None = Field(default=None, description="Fork from here.")
    checkpoint_id: str | None = Field(default=None, description="Fork from here.")


class StateUpdateResponse(BaseModel):
    """The checkpoint an update wrote."""

    checkpoint: dict[str, Any] = Field(description="{thread_id, checkpoint_ns, checkpoint_id}.")
    configurable: dict[str, Any] = Field(description="The same, as a configurable.")
    checkpoint_id: str = Field(description="The new checkpoint id.")


class StateCheckpointRequest(_Request):
    """``POST /threads/{id}/state/checkpoint``."""

    checkpoint: CheckpointRef = Field(description="Which checkpoint (head if no id).")
    subgraphs: bool = Field(default=False, description="Include subgraph states.")
    select: list[str] | None = Field(default=None, description="Accepted, unused.")


class HistoryRequest(_Request):
    """``POST /threads/{id}/history``."""

    limit: int = Field(default=10, ge=1, le=1000, description="At most this many states.")
    before: str | CheckpointRef | None = Field(
        default=None, description="Only checkpoints older than this one."
    )
    metadata: dict[str, Any] | None = Field(default=None, description="Metadata to match.")
    checkpoint: CheckpointRef | None = Field(default=None, description="Start from here.")
    select: list[str] | None = Field(default=None, description="Accepted, unused.")


# -- runs -------------------------------------------------------------------------------------


class CommandBody(_Request):
    """A LangGraph ``Command``: answer an interrupt, update state, jump."""

    resume: Any = Field(default=None, description="The answer to the pending interrupt(s).")
    update: dict[str, Any] | list[Any] | None = Field(default=None, description="State update.")
    goto: Any = Field(default=None, description="Node, {node, input}, or a list; [] is none.")


class RunCreate(_Request):
    """``POST /threads/{id}/runs[/stream|/wait]`` and ``POST /runs[/stream|/wait]``."""

    assistant_id: str = Field(description="Assistant UUID or graph (workflow) id.")
    input: dict[str, Any] | None = Field(
        default=None, description="Graph input; absent: continue from the checkpoint."
    )
    command: CommandBody | None = Field(default=None, description="Instead of input.")
    config: dict[str, Any] | None = Field(
        default=None, description="configurable entries, recursion_limit, tags."
    )
    context: dict[str, Any] | None = Field(default=None, description="Accepted, unused.")
    metadata: dict[str, Any] | None = Field(default=None, description="Run metadata.")
    stream_mode: str | list[str] | None = Field(
        default=None,
        description="values, updates, messages, messages-tuple, custom, tasks, checkpoints, "
        "debug (default: values; nothing for /wait).",
    )
    stream_subgraphs: bool = Field(default=False, description="Stream subgraph events too.")
    stream_resumable: bool = Field(
        default=False, description="Accepted: every event is stored and has an id anyway."
    )
    interrupt_before: Literal["*"] | list[str] | None = Field(
        default=None, description="Stop before these nodes."
    )
    interrupt_after: Literal["*"] | list[str] | None = Field(
        default=None, description="Stop after these nodes."
    )
    webhook: str | None = Field(default=None, description="POSTed the run when it ends.")
    checkpoint: CheckpointRef | None = Field(default=None, description="Start from here.")
    checkpoint_id: str | None = Field(default=None, description="Start from here.")
    checkpoint_during: bool | None = Field(
        default=None, description="Deprecated: false means durability exit."
    )
    multitask_strategy: MultitaskStrategy = Field(
        default="enqueue", description="What to do when the thread has a run already."
    )
    if_not_exists: Literal["create", "reject"] = Field(
        default="reject", description="create: make a missing thread; reject: 404."
    )
    on_disconnect: Literal["cancel", "continue"] = Field(
        default="continue", description="What a dropped stream/wait client does to the run."
    )
    on_completion: Literal["delete", "keep"] | None = Field(
        default=None, description="Stateless runs: delete the temporary thread (default)."
    )
    after_seconds: float | None = Field(default=None, ge=0, description="Delay the start.")
    durability: Literal["sync", "async", "exit"] | None = Field(
        default=None, description="When checkpoints are written (default: the workflow's)."
    )
    strict_resume: bool | None = Field(default=None, description="Accepted, unused.")


# The pydantic plugin's __init__ takes **kwargs, which a field named `kwargs` shadows; the
# field keeps the protocol's name.
class Run(BaseModel):  # type: ignore[no-redef]
    """A run of a workflow on a thread."""

    run_id: str = Field(description="UUID.")
    thread_id: str = Field(description="Its thread.")
    assistant_id: str = Field(description="The assistant UUID (even if a graph id was sent).")
    metadata: dict[str, Any] = Field(description="Client metadata.")
    status: Literal["pending", "running", "error", "success", "timeout", "interrupted"] = Field(
        description="Our status mapped per DESIGN §3."
    )
    kwargs: dict[str, Any] = Field(description="How it was started.")
    multitask_strategy: MultitaskStrategy = Field(description="As requested.")
    created_at: dt.datetime = Field(description="When it was created.")
    updated_at: dt.datetime = Field(description="Last status change.")
    cancel_reason: str | None = Field(default=None, description="Why it was cancelled.")


class CancelMany(_Request):
    """``POST /runs/cancel``: by thread and run ids, or by status."""

    thread_id: str | None = Field(default=None, description="The runs' thread.")
    run_ids: list[str] | None = Field(default=None, description="These runs.")
    status: Literal["pending", "running", "all"] | None = Field(
        default=None, description="Every run in this status (not with ids)."
    )
