"""Our stored run events → the protocol's SSE frames, and the wait/join bodies.

A run's events are stored with per-run ids 1, 2, 3... (DESIGN.md §7). :class:`FrameMapper`
turns each one into zero or more protocol frames for the requested modes:

=============================  ==============================================================
our event                      frames
=============================  ==============================================================
first ``status`` (pending)     ``metadata {run_id, attempt}``
``stream {mode, ns, data}``    ``values``, ``updates``, ``tasks``, ``checkpoints``, ``debug``;
                               ``messages`` (messages-tuple) or ``messages/metadata`` +
                               ``messages/partial|complete`` (messages); ``<mode>|<ns>`` for
                               subgraphs when ``stream_subgraphs``
``custom``                     ``custom`` (what the node wrote)
``step``                       ``custom {"task_step_result": TaskStepResult}``
``end``                        ``error {error, message}`` when it failed, then ``end``
=============================  ==============================================================

The last frame of an event carries the event's id, the others none (an SSE ``id`` persists),
so a client that reconnects with ``Last-Event-ID`` gets no duplicate and misses nothing: ids
strictly increase and are compared as integers (agent-protocol.md §2.6). Every finished stream
ends with ``end {run_id, status}``; a stream cut while the run goes on ends without it, so the
SDK asks the run and reconnects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson
from langchain_core.messages import AIMessageChunk, BaseMessageChunk, message_chunk_to_message
from sse_starlette import ServerSentEvent

from graph_runtime.errors import InputValidationError, Problem
from graph_runtime.models import Event, EventType, TaskStatus
from graph_runtime.state_machine import AGENT_PROTOCOL_STATUS
from server.agent_protocol.state import public_update, public_values

__all__ = [
    "STREAM_MODES",
    "FrameMapper",
    "compact_json",
    "end_frame",
    "error_payload",
    "langgraph_modes",
    "parse_stream_modes",
]

#: The stream modes a client may ask for.
STREAM_MODES = frozenset(
    {
        "values",
        "updates",
        "messages",
        "messages-tuple",
        "custom",
        "tasks",
        "checkpoints",
        "debug",
    }
)
#: Protocol mode → the LangGraph mode a run records for it (``custom`` comes from our events).
_RECORDED = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    "debug": "debug",
}


def parse_stream_modes(values: Iterable[Any], where: str = "/stream_mode") -> list[str]:
    """Stream modes from a body or query: strings, lists, JSON arrays or comma lists.

    Raises:
        InputValidationError: (422) an unknown mode.
    """
    modes: list[str] = []
    stack = list(values)
    stack.reverse()
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
            continue
        text = str(item).strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                stack.extend(reversed(parsed))
                continue
        for part in text.split(","):
            mode = part.strip()
            if mode and mode not in modes:
                modes.append(mode)
    unknown = [m for m in modes if m not in STREAM_MODES]
    if unknown:
        problems = [
            Problem(path=where, message=f"unknown stream mode {m!r}; use {sorted(STREAM_MODES)}")
            for m in unknown
        ]
        raise InputValidationError("unknown stream mode", problems=problems)
    return modes


def langgraph_modes(modes: Iterable[str]) -> tuple[str, ...]:
    """The LangGraph modes a run must record to serve these protocol modes."""
    out: list[str] = []
    for mode in modes:
        recorded = _RECORDED.get(mode)
        if recorded is not None and recorded not in out:
            out.append(recorded)
    return tuple(out)


def error_payload(status: TaskStatus, error: str | None) -> dict[str, Any]:
    """``{error, message}`` of a failed run, as the ``error`` event and ``__error__`` carry."""
    message = error or "the run failed"
    prefix, sep, rest = message.partition(": ")
    if sep and prefix.isidentifier():
        return {"error": prefix, "message": rest}
    return {
        "error": "TimeoutError" if status is TaskStatus.TIMED_OUT else "RunError",
        "message": message,
    }


def end_frame(run_id: str, status: TaskStatus, event_id: int | None) -> ServerSentEvent:
    """The ``end`` frame that closes a finished (or waiting) run's stream."""
    data = {"run_id": run_id, "status": AGENT_PROTOCOL_STATUS[status]}
    return ServerSentEvent(
        data=_dumps(data), event="end", id=None if event_id is None else str(event_id)
    )


class FrameMapper:
    """Maps one run's events to frames, for one client's modes (stateful: ``messages``)."""

    def __init__(self, run_id: str, modes: Iterable[str], *, subgraphs: bool) -> None:
        self.run_id = run_id
        self.modes = frozenset(modes)
        self.subgraphs = subgraphs
        self.ended = False
        """An ``end`` frame was produced."""
        self._messages: dict[str, BaseMessageChunk] = {}

    def frames(self, event: Event) -> list[ServerSentEvent]:
        """The frames of one event; the last carries its id."""
        out = list(self._frames(event))
        if not out:
            return out
        last = out[-1]
        out[-1] = ServerSentEvent(data=last.data, event=last.event, id=str(event.id))
        return out

    def _frames(self, event: Event) -> Iterable[ServerSentEvent]:
        data = event.data
        kind = event.type
        if kind is EventType.STATUS:
            if data.get("old") is None and data.get("new") == TaskStatus.PENDING.value:
                yield _frame("metadata", {"run_id": self.run_id, "attempt": 1})
        elif kind is EventType.STREAM:
            yield from self._stream(data)
        elif kind is EventType.CUSTOM:
            name = self._name("custom", data.get("ns") or ())
            if "custom" in self.modes and name is not None:
                yield _frame(name, data.get("data"))
        elif kind is EventType.STEP:
            if "custom" in self.modes:
                yield _frame("custom", {"task_step_result": data})
        elif kind is EventType.END:
            status = TaskStatus(data.get("status", TaskStatus.COMPLETED.value))
            if status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT):
                yield _frame("error", error_payload(status, data.get("error")))
            self.ended = True
            yield _frame("end", {"run_id": self.run_id, "status": AGENT_PROTOCOL_STATUS[status]})

    def _name(self, mode: str, ns: Iterable[str]) -> str | None:
        parts = list(ns)
        if not parts:
            return mode
        if not self.subgraphs:
            return None  # a subgraph's event, not asked for
        return mode + "|" + "|".join(parts)

    def _stream(self, data: dict[str, Any]) -> Iterable[ServerSentEvent]:
        mode = data.get("mode")
        payload = data.get("data")
        if mode == "messages":
            yield from self._message(data.get("ns") or (), payload)
            return
        if mode not in self.modes or not isinstance(mode, str):
            return
        name = self._name(mode, data.get("ns") or ())
        if name is None:
            return
        if mode == "values":
            payload = public_values(payload)
        elif mode == "updates":
            payload = public_update(payload)
        elif mode == "checkpoints" and isinstance(payload, dict):
            payload = {**payload, "values": public_values(payload.get("values"))}
        yield _frame(name, payload)

    def _message(self, ns: Iterable[str], payload: Any) -> Iterable[ServerSentEvent]:
        if not isinstance(payload, list) or len(payload) != 2:
            return
        if "messages-tuple" in self.modes:
            name = self._name("messages", ns)
            if name is not None:
                yield _frame(name, payload)
        if "messages" not in self.modes or self._name("messages", ns) is None:
            return
        message, meta = payload
        if not isinstance(message, dict):
            return
        msg_id = str(message.get("id"))
        if msg_id not in self._messages:
            yield _frame("messages/metadata", {msg_id: {"metadata": meta}})
        if message.get("type") == "AIMessageChunk":
            chunk = AIMessageChunk(**{k: v for k, v in message.items() if k != "type"})
            previous = self._messages.get(msg_id)
            merged = chunk if previous is None else previous + chunk
            self._messages[msg_id] = merged
            full = message_chunk_to_message(merged).model_dump()
            yield _frame("messages/partial", [full])
        else:
            self._messages.setdefault(msg_id, AIMessageChunk(content=""))
            yield _frame("messages/complete", [message])


def compact_json(data: Any) -> bytes:
    """``data`` as one compact line of UTF-8 JSON, as the reference (orjson) sends it.

    orjson is an order of magnitude faster than the standard library on large states; what it
    refuses (integers past 64 bits, keys that are not strings) goes through the standard
    library. Either way, what JSON cannot hold becomes its ``str()``.
    """
    try:
        return orjson.dumps(data, default=str)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _frame(event: str, data: Any) -> ServerSentEvent:
    return ServerSentEvent(data=_dumps(data), event=event)


def _dumps(data: Any) -> str:
    return compact_json(data).decode()
