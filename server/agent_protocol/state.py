"""LangGraph ``StateSnapshot`` → the protocol's ``ThreadState`` (and the pieces it shares).

Workflow state carries bookkeeping channels (``__input__``, ``__output__``, ``__loops__``...);
clients see the public keys only, in states, ``values`` and ``updates`` alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langgraph.types import StateSnapshot

from graph_runtime.launch import jsonable

__all__ = [
    "checkpoint_ref",
    "empty_state",
    "interrupt_view",
    "public_update",
    "public_values",
    "state_view",
]


def public_values(values: Any) -> Any:
    """State values without internal ``__`` keys (``__interrupt__`` is kept)."""
    if not isinstance(values, Mapping):
        return jsonable(values)
    return {
        str(k): jsonable(v)
        for k, v in values.items()
        if not str(k).startswith("__") or k == "__interrupt__"
    }


def public_update(update: Any) -> Any:
    """An ``updates`` chunk ``{node: update}`` with each update's internal keys removed."""
    if not isinstance(update, Mapping):
        return update
    out: dict[str, Any] = {}
    for node, value in update.items():
        if node == "__interrupt__":
            out[node] = value
        elif isinstance(value, Mapping):
            out[node] = {k: v for k, v in value.items() if not str(k).startswith("__")}
        else:
            out[node] = value
    return out


def interrupt_view(intr: Any) -> dict[str, Any]:
    """``{value, id}`` (+ ``response_schema`` when set) of a LangGraph ``Interrupt``."""
    view = jsonable(intr)
    if not isinstance(view, dict):
        return {"value": view, "id": None}
    schema = getattr(intr, "response_schema", None)
    if schema is not None:
        view["response_schema"] = jsonable(schema)
    return view


def interrupt_list(interrupts: Iterable[Any]) -> list[dict[str, Any]]:
    """Views of several interrupts."""
    return [interrupt_view(i) for i in interrupts]


def checkpoint_ref(thread_id: str, config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{thread_id, checkpoint_ns, checkpoint_id}`` of a ``RunnableConfig``."""
    if not config:
        return None
    conf = config.get("configurable") or {}
    ref: dict[str, Any] = {
        "thread_id": thread_id,
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf.get("checkpoint_id"),
    }
    if conf.get("checkpoint_map"):
        ref["checkpoint_map"] = jsonable(conf["checkpoint_map"])
    return ref


def empty_state(thread_id: str) -> dict[str, Any]:
    """The state of a thread with no checkpoint.

    ``checkpoint`` and ``metadata`` are never null: ``RemoteGraph.get_state`` subscripts both
    (the reference server sends nulls and RemoteGraph crashes, agent-protocol.md §1.2).
    """
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": {},
        "created_at": None,
        "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None},
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }


def state_view(snapshot: StateSnapshot, thread_id: str) -> dict[str, Any]:
    """The ``ThreadState`` of a snapshot."""
    checkpoint = checkpoint_ref(thread_id, snapshot.config)
    if checkpoint is None or checkpoint.get("checkpoint_id") is None:
        return empty_state(thread_id)
    parent = checkpoint_ref(thread_id, snapshot.parent_config)
    tasks = []
    for task in snapshot.tasks:
        sub_state = task.state
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": jsonable(task.path),
                "error": None if task.error is None else _error_text(task.error),
                "interrupts": interrupt_list(task.interrupts),
                "checkpoint": checkpoint_ref(thread_id, sub_state)
                if isinstance(sub_state, Mapping)
                else None,
                "state": state_view(sub_state, thread_id)
                if isinstance(sub_state, StateSnapshot)
                else None,
                "result": None if task.result is None else public_values(task.result),
            }
        )
    return {
        "values": public_values(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": jsonable(snapshot.metadata or {}),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": interrupt_list(snapshot.interrupts),
        "checkpoint_id": checkpoint["checkpoint_id"],
        "parent_checkpoint_id": None if parent is None else parent["checkpoint_id"],
    }


def _error_text(error: Any) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return str(error)
