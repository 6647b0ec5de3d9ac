"""How a run on a thread starts, and what it records for LangGraph-compatible streams.

The seed and task APIs start every run on a fresh LangGraph thread with a workflow input. The
Agent Protocol (``langgraph-sdk``, ``RemoteGraph``) runs on *threads* that outlive runs: a run
continues a thread from its checkpoint, answers an ``interrupt()`` with a ``Command``, starts
from an older checkpoint (time travel), stops at breakpoints, and streams LangGraph's own
modes (``values``, ``tasks``...). A :class:`RunLaunch` carries those choices from the HTTP
layer to the ``RunManager``; it is stored with the run (``RunRecord.metadata[LAUNCH_KEY]``),
so a run queued or cut by a restart starts the same way in the next process.

LangGraph chunks of the recorded modes become ``stream`` events ``{mode, ns, data}``
(:func:`stream_event_data`), JSON all the way down, so a client can replay them from the
store by event id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.types import Command, Interrupt, Send, StreamMode

from nodes.base import INPUT_KEY

if TYPE_CHECKING:
    from graph_runtime.compiler import CompiledWorkflow

__all__ = [
    "LAUNCH_KEY",
    "RECORDABLE_MODES",
    "RunLaunch",
    "StartPlan",
    "jsonable",
    "stream_event_data",
    "to_command",
]

#: Key of ``RunRecord.metadata`` that holds the launch of a run started on a thread.
LAUNCH_KEY = "__launch__"
#: LangGraph stream modes a run can record as ``stream`` events.
RECORDABLE_MODES = frozenset({"values", "updates", "messages", "tasks", "checkpoints", "debug"})

Durability = Literal["sync", "async", "exit"]
Breakpoints = Literal["*"] | tuple[str, ...] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLaunch:
    """How a run starts on its thread (a missing launch: a fresh thread, the run's input)."""

    input: dict[str, Any] | None = None
    """Graph input; None continues from the checkpoint (or runs ``command``)."""
    command: dict[str, Any] | None = None
    """``{"resume", "update", "goto"}``, turned into a LangGraph ``Command``."""
    checkpoint_id: str | None = None
    """Start from this checkpoint of the thread (time travel) instead of its head."""
    checkpoint_ns: str = ""
    """Namespace of ``checkpoint_id`` (the root graph: empty)."""
    interrupt_before: Breakpoints = None
    """Stop before these nodes (``"*"``: every node)."""
    interrupt_after: Breakpoints = None
    """Stop after these nodes (``"*"``: every node)."""
    stream_modes: tuple[str, ...] = ()
    """LangGraph modes whose chunks are recorded as ``stream`` events."""
    durability: Durability | None = None
    """When checkpoints are written; None: the workflow's setting."""
    recursion_limit: int | None = None
    """Superstep bound; None: the workflow's setting."""
    configurable: dict[str, Any] = field(default_factory=dict)
    """Extra ``config["configurable"]`` entries (thread and checkpoint keys are ours)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """``config["metadata"]``: LangGraph copies it into every checkpoint's metadata."""
    not_before: dt.datetime | None = None
    """Do not start before this time (``after_seconds``)."""
    delay_seconds: float | None = None
    """Do not start until this long after the run is created: ``RunManager.submit`` turns it
    into ``not_before`` from the run's ``created_at``."""
    input_keys: tuple[str, ...] = ()
    """Input keys seen on the thread: state keys of a workflow without a ``state`` block."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal launch."""
        data = dataclasses.asdict(self)
        for key in ("interrupt_before", "interrupt_after", "stream_modes", "input_keys"):
            if isinstance(data[key], tuple):
                data[key] = list(data[key])
        if self.not_before is not None:
            data["not_before"] = self.not_before.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunLaunch:
        """Rebuild a launch from :meth:`to_dict` output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in names}
        for key in ("interrupt_before", "interrupt_after"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        values["stream_modes"] = tuple(values.get("stream_modes") or ())
        values["input_keys"] = tuple(values.get("input_keys") or ())
        if isinstance(values.get("not_before"), str):
            values["not_before"] = dt.datetime.fromisoformat(values["not_before"])
        return cls(**values)

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> RunLaunch | None:
        """The launch stored in a run's metadata, if any."""
        data = metadata.get(LAUNCH_KEY)
        return cls.from_dict(data) if isinstance(data, Mapping) else None

    @property
    def recorded_modes(self) -> frozenset[str]:
        """The LangGraph modes whose chunks this run records."""
        return frozenset(self.stream_modes) & RECORDABLE_MODES

    async def _checkpointed(self, compiled: CompiledWorkflow, config: RunnableConfig) -> bool:
        """Whether this run saved a checkpoint yet (the thread's head is one of its own).

        A run cut before its first checkpoint must start over with its input, also on a
        thread whose earlier runs left checkpoints: continuing from their head would
        drop this run's input. LangGraph copies ``metadata`` into each checkpoint, so the
        head's ``run_id`` tells whose it is.
        """
        head = await _head(compiled, config)
        if head is None:
            return False
        run_id = self.metadata.get("run_id")
        return run_id is None or head.metadata.get("run_id") == run_id

    async def plan(
        self,
        compiled: CompiledWorkflow,
        config: RunnableConfig,
        *,
        first: bool,
        resume: Any = None,
    ) -> StartPlan:
        """How to call ``astream`` for this run.

        Args:
            compiled: The run's workflow.
            config: Its thread's config (``CompiledWorkflow.config``).
            first: The run starts now (it was pending). Else it continues after a pause or
                a crash: from the thread's head, answering ``resume`` if given, never from
                ``checkpoint_id`` again (that would fork a second time).
            resume: The value a resume of a paused run answers an ``interrupt()`` with.
        """
        graph = compiled.graph
        cfg = cast(RunnableConfig, dict(config))
        configurable = {**self.configurable, **(config.get("configurable") or {})}
        cfg["configurable"] = configurable
        if self.metadata:
            # LangGraph copies it into every checkpoint's metadata: run_id lets a rollback
            # delete exactly the checkpoints of one run (adelete_for_runs).
            cfg["metadata"] = dict(self.metadata)
        if self.recursion_limit is not None:
            cfg["recursion_limit"] = self.recursion_limit
        graph_input: Any = None
        if not first and self.checkpoint_id is None and not await self._checkpointed(compiled, cfg):
            first = True  # it was cut before its first checkpoint: start it over
        if not first:
            graph_input = None if resume is None else Command(resume=resume)
        else:
            if self.checkpoint_id is not None:
                configurable.update(
                    checkpoint_id=self.checkpoint_id, checkpoint_ns=self.checkpoint_ns
                )
            if self.command is not None:
                command = to_command(self.command)
                if self.checkpoint_id is not None and "resume" in self.command:
                    # At an older checkpoint LangGraph would replay the answer saved there
                    # (langgraph#7361): fork a copy without the saved answers, answer that.
                    forked = await graph.aupdate_state(cfg, None)
                    configurable.update(forked.get("configurable") or {})
                graph_input = command
            elif self.checkpoint_id is None and await _is_fresh(compiled, cfg):
                # A new thread gets the workflow defaults; with no input, the input node
                # says what is missing.
                graph_input = compiled.initial_input(self.input or {})
            elif self.input is not None:
                graph_input = {k: v for k, v in self.input.items() if k in compiled.state_keys}
                graph_input[INPUT_KEY] = dict(self.input)
        modes = list(compiled.stream_modes)
        modes += [cast(StreamMode, m) for m in sorted(self.recorded_modes) if m not in modes]
        return StartPlan(
            graph_input=graph_input,
            config=cfg,
            stream_modes=modes,
            durability=self.durability or compiled.definition.settings.durability,
            interrupt_before=list(self.interrupt_before)
            if isinstance(self.interrupt_before, tuple)
            else self.interrupt_before,
            interrupt_after=list(self.interrupt_after)
            if isinstance(self.interrupt_after, tuple)
            else self.interrupt_after,
            recorded=self.recorded_modes,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StartPlan:
    """The arguments of one ``astream`` call, and which chunks to record."""

    graph_input: Any
    """Input, a ``Command``, or None to continue from the checkpoint."""
    config: RunnableConfig
    """Thread (and checkpoint) config."""
    stream_modes: list[StreamMode]
    """Modes the run streams: the recorder's plus the recorded ones."""
    durability: Durability
    """When checkpoints are written."""
    interrupt_before: Literal["*"] | list[str] | None = None
    """Breakpoints before nodes (None: the workflow's own)."""
    interrupt_after: Literal["*"] | list[str] | None = None
    """Breakpoints after nodes (None: the workflow's own)."""
    recorded: frozenset[str] = frozenset()
    """Modes whose chunks become ``stream`` events."""


async def _head(compiled: CompiledWorkflow, config: RunnableConfig) -> CheckpointTuple | None:
    saver = compiled.graph.checkpointer
    if not isinstance(saver, BaseCheckpointSaver):
        return None
    return await saver.aget_tuple(config)


async def _is_fresh(compiled: CompiledWorkflow, config: RunnableConfig) -> bool:
    saver = compiled.graph.checkpointer
    if not saver or saver is True:
        return True
    return await saver.aget_tuple(config) is None


def to_command(command: Mapping[str, Any]) -> Command[Any]:
    """A LangGraph ``Command`` from its JSON form ``{"resume", "update", "goto"}``.

    ``goto`` is a node name, ``{"node", "input"}`` (a ``Send``) or a list of those; an empty
    list (what ``RemoteGraph`` sends with every resume) means no jump. ``update`` is a dict or
    a list of ``[key, value]`` pairs.
    """
    kwargs: dict[str, Any] = {}
    if "resume" in command:
        kwargs["resume"] = command["resume"]
    update = command.get("update")
    if update is not None:
        kwargs["update"] = (
            [tuple(pair) for pair in update] if isinstance(update, list) else dict(update)
        )
    goto = command.get("goto")
    if goto not in (None, [], ()):
        items = goto if isinstance(goto, list) else [goto]
        targets = [
            Send(item["node"], item.get("input")) if isinstance(item, Mapping) else str(item)
            for item in items
        ]
        kwargs["goto"] = targets[0] if len(targets) == 1 else targets
    return Command(**kwargs)


def stream_event_data(namespace: Sequence[str], mode: str, chunk: Any) -> dict[str, Any]:
    """The payload of the ``stream`` event that records one LangGraph chunk."""
    if mode == "messages":
        message, meta = chunk
        data: Any = [_message_dict(message), jsonable(meta)]
    else:
        data = jsonable(chunk)
    return {"mode": mode, "ns": list(namespace), "data": data}


def _message_dict(message: Any) -> Any:
    dump = getattr(message, "model_dump", None)
    return jsonable(dump()) if callable(dump) else jsonable(message)


def jsonable(value: Any, _depth: int = 0) -> Any:
    """Plain JSON (dicts, lists, str, finite numbers, bools, None) for any stream value.

    LangChain messages and pydantic models become their ``model_dump()``, ``Interrupt`` its
    ``{value, id}``, ``Send`` ``{node, arg}``, dataclasses their fields, tuples and sets
    lists, dates ISO strings, NaN and infinities None, anything else ``str(value)``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _depth > 100:
        return str(value)  # a cycle or a pathological nesting: never recurse forever
    depth = _depth + 1
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth) for v in value]
    if isinstance(value, Interrupt):
        return {"value": jsonable(value.value, depth), "id": value.id}
    if isinstance(value, Send):
        return {"node": value.node, "arg": jsonable(value.arg, depth)}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(mode="json"), depth)
        except TypeError:  # LangChain's Serializable.model_dump takes no mode
            return jsonable(dump(), depth)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), depth) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
