"""WorkflowDefinition → LangGraph ``StateGraph``, compiled with a checkpointer and cached.

Each node becomes one async function that wraps the node type's executor with the node's
policies: per-attempt timeout (E002), retries with backoff (every attempt a step record,
exhaustion E005) and ``on_error``. Branching nodes return ``Command(goto=...)`` with
``destinations`` so the chosen branch is in the step record and in ``draw()``. A node's
``when`` edges are taken by the node too (on its state with its own update applied, as a
LangGraph router would read it), except where the node routes otherwise: then they become a
LangGraph router. ``map`` fans out with ``Send``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import operator
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.cache.base import BaseCache
from langgraph.cache.memory import InMemoryCache
from langgraph.channels.base import BaseChannel
from langgraph.channels.last_value import LastValue
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import CachePolicy, Command, Send, StreamMode

from graph_runtime.errors import (
    ExpressionError,
    GraphRuntimeError,
    InputValidationError,
    NodeExecutionError,
    RetryExhaustedError,
    RunTimeoutError,
    WorkflowValidationError,
)
from graph_runtime.expressions import MISS, Expression, Scope, compile_expression, to_view
from graph_runtime.models import ErrorCode, TaskStatus
from graph_runtime.recorder import EventRecorder
from graph_runtime.schema import NodeSpec, Policies, RetrySpec, WorkflowDefinition, node_config
from graph_runtime.topology import Edge, Topology, topology
from graph_runtime.validation import check_workflow
from nodes.base import (
    INDEX_KEY,
    INPUT_KEY,
    ITEM_KEY,
    LOOPS_KEY,
    MAP_KEY,
    OUTPUT_KEY,
    NodeContext,
    NodeExecutor,
    NodeOutput,
    SubStep,
    public_state,
)
from nodes.registry import NodeRegistry, default_registry

__all__ = ["CompiledWorkflow", "Compiler", "RunContext", "error_for_code"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """LangGraph runtime context of one run: who is running and where records go."""

    run_id: str
    workflow_id: str
    version: int | None
    recorder: EventRecorder
    services: Mapping[str, Any] = field(default_factory=dict)
    step_prefix: str = ""
    """Prepended to step names: a subgraph's steps are recorded as ``<parent node>/<node>``."""
    writes_saved: bool = False
    """LangGraph saves each task's writes as it finishes (a durability other than ``exit``)."""


def _append(left: Any, right: Any) -> Any:
    left = [] if left is None else list(left)
    return left + (list(right) if isinstance(right, list | tuple) else [right])


def _merge(left: Any, right: Any) -> Any:
    return {**(left or {}), **(right or {})}


def _add(left: Any, right: Any) -> Any:
    return operator.add(left or 0, right or 0)


REDUCERS: dict[str, Callable[[Any, Any], Any] | None] = {
    "replace": None,
    "append": _append,
    "merge": _merge,
    "add": _add,
    "messages": add_messages,
}

#: Node types whose LLM tokens are streamed (LangGraph's ``messages`` mode).
_TOKEN_NODE_TYPES = frozenset({"llm", "subgraph"})
#: Node types that run a child graph, whose chunks stream with ``subgraphs=True``.
_SUBGRAPH_NODE_TYPES = frozenset({"subgraph"})
#: The runtime's channels that only some node types write (see ``BaseNode.runtime_writes``).
_RUNTIME_CHANNELS = frozenset({OUTPUT_KEY, LOOPS_KEY, MAP_KEY})

_CODE_ERRORS: dict[ErrorCode, type[GraphRuntimeError]] = {
    ErrorCode.VALIDATION_ERROR: InputValidationError,
    ErrorCode.TIMEOUT_ERROR: RunTimeoutError,
    ErrorCode.EXECUTION_ERROR: NodeExecutionError,
    ErrorCode.RETRY_EXHAUSTED: RetryExhaustedError,
    ErrorCode.DSL_EVALUATION_ERROR: ExpressionError,
}


def error_for_code(code: ErrorCode, message: str) -> GraphRuntimeError:
    """A domain error of the class that carries ``code``."""
    cls = _CODE_ERRORS.get(code, NodeExecutionError)
    if cls is ExpressionError:
        return ExpressionError(message)
    return cls(message)


def classify(exc: BaseException) -> tuple[ErrorCode, str]:
    """The error code and message a failed attempt is recorded with."""
    if isinstance(exc, GraphRuntimeError):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return ErrorCode.TIMEOUT_ERROR, str(exc) or "timed out"
    return ErrorCode.EXECUTION_ERROR, f"{type(exc).__name__}: {exc}"


def backoff(retry: RetrySpec, attempt: int) -> float:
    """Seconds to wait after failed ``attempt`` (1-based)."""
    delay = min(retry.max_interval, retry.initial_interval * retry.backoff_factor ** (attempt - 1))
    if retry.jitter:
        delay *= 1 + random.uniform(0, 0.25)
    return delay


def _effective(node: NodeSpec, defaults: Policies) -> Policies:
    return Policies(
        retry=node.retry or defaults.retry,
        timeout=node.timeout if node.timeout is not None else defaults.timeout,
        cache=node.cache or defaults.cache,
        on_error=node.on_error or defaults.on_error,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledWorkflow:
    """A compiled graph plus what the runtime needs to start runs of it."""

    definition: WorkflowDefinition
    graph: CompiledStateGraph[Any, Any, Any, Any]
    state_keys: frozenset[str]
    defaults: Mapping[str, Any]
    expected_steps: int
    node_types: Mapping[str, str]
    stream_modes: tuple[StreamMode, ...] = field(init=False)
    """The LangGraph stream modes a run needs.

    No ``values``: the run's final state comes with LangGraph's end of the run (see
    :meth:`graph_runtime.recorder.EventRecorder.final_values_callbacks`). ``messages`` and
    ``subgraphs=True`` (like ``custom``) make LangGraph stream
    concurrently, which costs CPU every step and commits a superstep's writes apart from
    its checkpoint; they are asked for only when a node can use them. Chunks a node
    writes with ``ctx.writer`` go to the recorder directly, so ``custom`` is never needed.
    """
    streams_subgraphs: bool = field(init=False)
    """Whether a run streams with ``subgraphs=True`` (a node runs a child graph)."""

    def __post_init__(self) -> None:
        # Computed once: every run of the graph asks.
        types = set(self.node_types.values())
        modes: tuple[StreamMode, ...] = ("updates",)
        if types & _TOKEN_NODE_TYPES:
            modes += ("messages",)
        object.__setattr__(self, "stream_modes", modes)
        object.__setattr__(self, "streams_subgraphs", bool(types & _SUBGRAPH_NODE_TYPES))

    def initial_input(self, input_data: Mapping[str, Any]) -> dict[str, Any]:
        """The first update of a run: defaults, same-named input keys, and the raw input."""
        start = {k: v for k, v in self.defaults.items()}
        start.update({k: v for k, v in input_data.items() if k in self.state_keys})
        start[INPUT_KEY] = dict(input_data)
        return start

    def config(self, thread_id: str) -> RunnableConfig:
        """The RunnableConfig for a run on ``thread_id``."""
        settings = self.definition.settings
        cfg: RunnableConfig = {
            "configurable": {"thread_id": thread_id},
            "recursion_limit": settings.recursion_limit,
        }
        if settings.max_concurrency:
            cfg["max_concurrency"] = settings.max_concurrency
        return cfg

    def draw(self) -> str:
        """The Mermaid diagram of the graph (LangGraph's own drawing)."""
        return self.graph.get_graph().draw_mermaid()


class _Route:
    """The ``when``/``else`` edges out of one node: the targets the state picks."""

    __slots__ = ("edges", "src")

    def __init__(self, src: str, edges: list[Edge]) -> None:
        self.src = src
        self.edges: list[tuple[Expression | None, int | None, list[str]]] = [
            (
                compile_expression(e.when) if e.when is not None else None,
                e.index,
                list(e.targets),
            )
            for e in edges
        ]

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(sorted({t for _, _, targets in self.edges for t in targets}))

    def targets(self, state: Mapping[str, Any], rc: RunContext) -> list[str]:
        """The targets of the first edge whose condition holds, else of the ``else`` edge."""
        raw = {"state": state}
        variables: Scope | None = None
        fallback: list[str] = []
        for expr, index, targets in self.edges:
            if expr is None:
                fallback = targets
                continue
            lane = expr.state_lane
            hit = lane(raw) if lane is not None else MISS
            if hit is MISS:
                if variables is None:
                    # Converted as read: `state.count < 10` converts `count` only.
                    variables = Scope(
                        public_state(state),
                        {"input": state.get(INPUT_KEY) or {}},
                        {
                            "run": {
                                "id": rc.run_id,
                                "workflow_id": rc.workflow_id,
                                "version": rc.version,
                            }
                        },
                    )
                try:
                    hit = expr.evaluate(variables)
                except ExpressionError as exc:
                    raise exc.located(node_id=self.src, field=f"/edges/{index}/when") from None
            if hit is True:
                return targets
        return fallback


class _StateAfter:
    """A node's state with its own update applied, as a LangGraph conditional edge reads it."""

    __slots__ = ("keys", "reducing")

    def __init__(
        self, keys: frozenset[str], reducing: Mapping[str, BaseChannel[Any, Any, Any]]
    ) -> None:
        self.keys = keys
        self.reducing = reducing
        """The public keys with a reducer, by their (unused) channel."""

    def __call__(self, state: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
        after = dict(state)
        for key, value in update.items():
            channel = self.reducing.get(key)
            if channel is not None:
                # Through a copy of the key's channel, as LangGraph's fresh read does.
                current = channel.from_checkpoint(state[key]) if key in state else channel.copy()
                current.update([value])
                if current.is_available():
                    after[key] = current.get()
            elif key in self.keys:
                after[key] = value
        return after


class Compiler:
    """Compiles workflow definitions against one checkpointer; caches by content."""

    def __init__(
        self,
        checkpointer: BaseCheckpointSaver[Any] | None,
        *,
        registry: NodeRegistry | None = None,
        cache: BaseCache[Any] | None = None,
        registries: Mapping[str, Any] | None = None,
        max_cached: int = 256,
    ) -> None:
        self.checkpointer = checkpointer
        self.registry = registry or default_registry
        self.cache = cache or InMemoryCache()
        self.registries = dict(registries or {})
        self._compiled: dict[tuple[str, str, frozenset[str]], CompiledWorkflow] = {}
        self._max_cached = max_cached
        # id(definition) → (definition, its content hash). Definitions are frozen models and
        # the run manager hands over the same object for every run of a version, while the
        # hash serialises the whole document. The entry holds the definition, so its id
        # cannot be reused by another object while the entry exists.
        self._hashes: dict[int, tuple[WorkflowDefinition, str]] = {}

    def compile(
        self, definition: WorkflowDefinition, *, input_keys: frozenset[str] = frozenset()
    ) -> CompiledWorkflow:
        """The compiled graph of ``definition`` (cached by workflow id and content hash).

        Raises:
            WorkflowValidationError: with every problem of the document.
        """
        extra = input_keys if definition.state_inferred else frozenset()
        key = (definition.id, self.content_hash(definition), extra)
        hit = self._compiled.get(key)
        if hit is not None:
            return hit
        problems = check_workflow(definition, registry=self.registry, **self.registries)
        if any(p.severity == "error" for p in problems):
            raise WorkflowValidationError(problems)
        compiled = _Builder(definition, self.registry, extra).build(self.checkpointer, self.cache)
        if len(self._compiled) >= self._max_cached:
            self._compiled.pop(next(iter(self._compiled)))
        self._compiled[key] = compiled
        return compiled

    def content_hash(self, definition: WorkflowDefinition) -> str:
        """``definition.content_hash``, computed once per definition object this compiler saw.

        The hash serialises the whole document; a runtime asks for it on every submit.
        """
        known = self._hashes.get(id(definition))
        if known is not None and known[0] is definition:
            return known[1]
        content_hash = definition.content_hash
        if len(self._hashes) >= self._max_cached:
            self._hashes.pop(next(iter(self._hashes)))
        self._hashes[id(definition)] = (definition, content_hash)
        return content_hash


class _Builder:
    def __init__(
        self, definition: WorkflowDefinition, registry: NodeRegistry, extra_keys: frozenset[str]
    ):
        self.d = definition
        self.registry = registry
        self.topo: Topology = topology(definition, registry)
        self.extra_keys = extra_keys
        self.map_sources = {t: m for m, t in self.topo.map_targets.items()}

    # -- state ------------------------------------------------------------------------------

    def state_schema(self) -> tuple[type[Any], frozenset[str], dict[str, Any]]:
        fields: dict[str, Any] = {}
        defaults: dict[str, Any] = {}
        if self.d.state is not None:
            for key, spec in self.d.state.items():
                reducer = REDUCERS[spec.reducer]
                # `list`, not Any: LangGraph then starts the channel at [] and the run's input
                # goes through the reducer too (input messages get ids, so a node that writes
                # the history back does not duplicate it).
                base: Any = list if spec.reducer in ("messages", "append") else Any
                fields[key] = Annotated[base, reducer] if reducer else Any
                if spec.has_default:
                    defaults[key] = spec.default
                elif spec.reducer == "messages" or spec.type == "messages":
                    defaults[key] = []
        else:
            keys = set(self.extra_keys)
            for node in self.d.nodes:
                cfg = node_config(node, self.registry)
                keys |= self.registry.get(node.type).writes(cfg)
                if node.on_error and node.on_error.update:
                    keys |= set(node.on_error.update)
            fields = {k: Any for k in sorted(keys) if not k.startswith("__")}
        # The runtime's channels: the input always, the others when a node may write them.
        # LangGraph reads and copies every channel at every step, written or not.
        written = self._runtime_writes()
        fields[INPUT_KEY] = Any
        if OUTPUT_KEY in written:
            fields[OUTPUT_KEY] = Any
        if LOOPS_KEY in written:
            fields[LOOPS_KEY] = Annotated[Any, _merge]
        if MAP_KEY in written:
            fields[MAP_KEY] = Annotated[Any, _merge]
        schema = TypedDict("WorkflowState", fields, total=False)  # type: ignore[operator,misc]
        public = frozenset(k for k in fields if not k.startswith("__"))
        return schema, public, defaults

    def _runtime_writes(self) -> frozenset[str]:
        """The runtime keys a node of this workflow may write (every one if a type says not)."""
        written: set[str] = set()
        for node in self.d.nodes:
            # Declared by the class itself: a subclass of a core type may write more.
            declared = vars(self.registry.get(node.type)).get("runtime_writes")
            if declared is None:
                return _RUNTIME_CHANNELS
            written |= declared
        return frozenset(written)

    # -- graph ------------------------------------------------------------------------------

    def build(
        self, checkpointer: BaseCheckpointSaver[Any] | None, cache: BaseCache[Any]
    ) -> CompiledWorkflow:
        schema, public_keys, defaults = self.state_schema()
        builder: StateGraph[Any, Any, Any, Any] = StateGraph(schema, context_schema=RunContext)
        plain, branch_map, routers = self._classify_edges()
        goto_nodes = {n.id for n in self.d.nodes if (n.on_error and n.on_error.action == "route")}
        # The state a node's `when` edges see: the node's input with its own update applied,
        # through the keys' reducers (as LangGraph's conditional edges read it).
        channels: dict[str, Any] = builder.channels
        reducing = {
            k: ch
            for k, ch in channels.items()
            if k in public_keys and not isinstance(ch, LastValue)
        }
        state_after = _StateAfter(frozenset(channels), reducing)
        for node in self.d.nodes:
            pol = _effective(node, self.d.defaults)
            targets = branch_map.get(node.id)
            static_goto = None
            if node.id in goto_nodes:
                static_goto = tuple(t for e in plain.get(node.id, []) for t in e.targets)
            # A node's `when` edges are taken in the node itself (Command(goto=...)), unless it
            # routes otherwise already: one runnable less per step than a LangGraph router.
            route: _Route | None = None
            if (
                node.id in routers
                and targets is None
                and static_goto is None
                and node.id not in self.topo.map_targets
            ):
                route = _Route(node.id, routers.pop(node.id))
            destinations: tuple[str, ...] | None = None
            if route is not None:
                destinations = route.destinations
            elif targets is not None:
                destinations = tuple(sorted({t for ts in targets.values() for t in ts}))
            elif static_goto is not None:
                destinations = tuple(
                    sorted(
                        set(static_goto) | {pol.on_error.to}
                        if pol.on_error and pol.on_error.to
                        else set(static_goto)
                    )
                )
            builder.add_node(
                node.id,
                self._node_fn(node, pol, targets, static_goto, route, state_after),
                defer=node.defer,
                metadata={**(node.metadata or {}), "node_type": node.type},
                cache_policy=self._cache_policy(pol),
                destinations=destinations,
            )
        for src, edges in plain.items():
            if src in goto_nodes:
                continue
            for e in edges:
                for t in e.targets:
                    builder.add_edge(src if len(e.sources) == 1 else list(e.sources), t)
        for src, routes in routers.items():
            builder.add_conditional_edges(src, self._router(_Route(src, routes)))
        for m, t in self.topo.map_targets.items():
            builder.add_conditional_edges(m, self._fan(m, t))
        before = sorted(
            {
                *self.d.settings.breakpoints.before,
                *(n.id for n in self.d.nodes if n.interrupt == "before"),
            }
        )
        after = sorted(
            {
                *self.d.settings.breakpoints.after,
                *(n.id for n in self.d.nodes if n.interrupt == "after"),
            }
        )
        graph = builder.compile(
            checkpointer=checkpointer,
            cache=cache,
            interrupt_before=before or None,
            interrupt_after=after or None,
            name=self.d.id,
        )
        return CompiledWorkflow(
            definition=self.d,
            graph=graph,
            state_keys=public_keys,
            defaults=defaults,
            expected_steps=self.d.settings.expected_steps or max(1, self.topo.longest_path()),
            node_types={n.id: n.type for n in self.d.nodes},
        )

    def _classify_edges(
        self,
    ) -> tuple[dict[str, list[Edge]], dict[str, dict[str, tuple[str, ...]]], dict[str, list[Edge]]]:
        plain: dict[str, list[Edge]] = {}
        branches: dict[str, dict[str, tuple[str, ...]]] = {}
        routers: dict[str, list[Edge]] = {}
        joins_done: set[int] = set()
        for e in self.topo.edges:
            src = e.sources[0]
            if e.branch is not None:
                branches.setdefault(src, {})[e.branch] = e.targets
            elif e.when is not None or e.else_:
                routers.setdefault(src, []).append(e)
            elif len(e.sources) > 1:
                if id(e) not in joins_done:
                    joins_done.add(id(e))
                    plain.setdefault(src, []).append(e)
            else:
                plain.setdefault(src, []).append(e)
        for n in self.d.nodes:
            cls = self.registry.get(n.type)
            names = cls.branches(node_config(n, self.registry))
            if names is not None:
                branches.setdefault(n.id, {})
        return plain, branches, routers

    def _cache_policy(self, pol: Policies) -> CachePolicy[Any] | None:
        if pol.cache is None:
            return None
        keys = pol.cache.key

        def key_func(state: Any) -> str:
            view = public_state(state) if keys is None else {k: state.get(k) for k in keys}
            raw = json.dumps(to_view(view), sort_keys=True, default=str)
            return hashlib.sha256(raw.encode()).hexdigest()

        return CachePolicy(key_func=key_func, ttl=pol.cache.ttl)

    def _router(self, route: _Route) -> Callable[..., Any]:
        # async although it never awaits: LangGraph runs a sync router on a worker thread,
        # a thread hop per step for a few microseconds of CEL (nodes evaluate CEL on the loop
        # too).
        async def route_fn(state: dict[str, Any], runtime: Runtime[RunContext]) -> list[str]:
            return route.targets(state, runtime.context)

        route_fn.__name__ = f"route_{route.src}"
        return route_fn

    def _fan(self, map_id: str, target: str) -> Callable[..., Any]:
        after = [t for e in self.topo.outgoing(target) if not e.conditional for t in e.targets]

        async def fan(state: dict[str, Any]) -> list[Any]:  # async: no thread hop (see route)
            items = (state.get(MAP_KEY) or {}).get(map_id) or []
            if not items:
                return after or [END]  # nothing to map: carry on as if every item were done
            return [
                Send(target, {**state, ITEM_KEY: it, INDEX_KEY: i}) for i, it in enumerate(items)
            ]

        fan.__name__ = f"fan_{map_id}"
        return fan

    def _node_fn(
        self,
        node: NodeSpec,
        pol: Policies,
        branch_targets: dict[str, tuple[str, ...]] | None,
        static_goto: tuple[str, ...] | None,
        route: _Route | None,
        after: _StateAfter,
    ) -> Callable[..., Any]:
        cls = self.registry.get(node.type)
        extra_vars: frozenset[str] = frozenset()
        as_name: str | None = None
        if node.id in self.map_sources:
            as_name = str(
                getattr(
                    node_config(self.d.node(self.map_sources[node.id]), self.registry),
                    "as_",
                    "item",
                )
            )
            extra_vars = frozenset({as_name, "index", "item"})
        executor: NodeExecutor = cls(
            node.id, node_config(node, self.registry), extra_variables=extra_vars
        )  # type: ignore[call-arg]
        return _NodeRunner(
            node=node,
            executor=executor,
            policies=pol,
            branch_targets=branch_targets,
            static_goto=static_goto,
            route=route,
            after=after,
            as_name=as_name,
            models=self.d.models,
        ).__call__


def _log(recorder: EventRecorder, node_id: str, level: str, message: str) -> None:
    recorder.log(level, message, node_id)


def _write_custom(recorder: EventRecorder, loop: asyncio.AbstractEventLoop, chunk: Any) -> None:
    """``ctx.writer``: a custom chunk becomes an event at once (not via LangGraph's stream)."""
    try:
        # The namespace LangGraph's `custom` mode reports: the writing task's graph.
        task_ns: str = get_config()["configurable"]["checkpoint_ns"]
        namespace = tuple(task_ns.split("|")[:-1])
    except (RuntimeError, KeyError):
        namespace = ()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        recorder.custom(namespace, chunk)
    else:
        # Written from a worker thread: the recorder is only ever touched on the loop.
        loop.call_soon_threadsafe(recorder.custom, namespace, chunk)


def _record_sub(
    recorder: EventRecorder, step: str, task_id: str | None, attempt: int, sub: SubStep
) -> None:
    # Sub-steps get their own key under the node's task, so neither collides with the
    # node's (task id, attempt) record and a re-executed attempt is not recorded twice.
    recorder.step(
        node_id=f"{step}.{sub.name}",
        node_type=sub.node_type,
        task_id=None if task_id is None else f"{task_id}/{sub.key}",
        attempt=attempt,
        started_at=sub.started_at,
        result=sub.result,
        error_code=sub.error_code,
        error_message=sub.error_message,
    )


class _NodeRunner:
    """One node's LangGraph function: attempts, timeouts, retries, records, on_error."""

    def __init__(
        self,
        *,
        node: NodeSpec,
        executor: NodeExecutor,
        policies: Policies,
        branch_targets: dict[str, tuple[str, ...]] | None,
        static_goto: tuple[str, ...] | None,
        route: _Route | None,
        after: _StateAfter,
        as_name: str | None,
        models: Mapping[str, Any],
    ) -> None:
        self.node_id = node.id
        self.models = models
        self.node_type = node.type
        self.executor = executor
        self.timeout = policies.timeout_seconds()
        self.retry = policies.retry
        self.on_error = policies.on_error
        self.branch_targets = branch_targets
        self.static_goto = static_goto
        self.route = route
        self.after = after
        self.as_name = as_name

    async def __call__(self, state: dict[str, Any], runtime: Runtime[RunContext]) -> Any:
        rc = runtime.context
        info = runtime.execution_info
        task_id = info.task_id if info is not None else None
        extra: dict[str, Any] = {}
        if self.as_name is not None:
            extra = {
                self.as_name: state.get(ITEM_KEY),
                "item": state.get(ITEM_KEY),
                "index": state.get(INDEX_KEY),
            }
        recorder = rc.recorder
        step_name = rc.step_prefix + self.node_id
        attempt = 0
        while True:
            attempt += 1
            started = dt.datetime.now(dt.UTC)  # utcnow(), one call less per step
            recorder.current_node = step_name  # what the run's status shows while it runs
            ctx = NodeContext(
                node_id=self.node_id,
                node_type=self.node_type,
                state=state,
                run={
                    "id": rc.run_id,
                    "workflow_id": rc.workflow_id,
                    "version": rc.version,
                    "attempt": attempt,
                },
                attempt=attempt,
                extra=extra,
                writer=partial(_write_custom, recorder, asyncio.get_running_loop()),
                log=partial(_log, recorder, step_name),
                services=rc.services,
                record_step=partial(_record_sub, recorder, step_name, task_id, attempt),
                models=self.models,
            )
            try:
                if self.timeout is not None:
                    async with asyncio.timeout(self.timeout):
                        out = await self.executor.run(ctx)
                else:
                    out = await self.executor.run(ctx)
            except GraphBubbleUp:
                raise  # interrupt() and drains are control flow, not failures
            except asyncio.CancelledError:
                deadline = recorder.deadline
                if deadline is not None and asyncio.get_running_loop().time() >= deadline:
                    status, code = TaskStatus.TIMED_OUT, ErrorCode.TIMEOUT_ERROR
                    message = "the step was cut by the run's timeout"
                else:
                    status, code = TaskStatus.STOPPED, ErrorCode.CANCELLED_ERROR
                    message = "the step was cut by a stop"
                recorder.step(
                    node_id=step_name,
                    node_type=self.node_type,
                    task_id=task_id,
                    attempt=attempt,
                    started_at=started,
                    status=status,
                    error_code=code,
                    error_message=message,
                )
                raise
            except Exception as exc:
                code, message = classify(exc)
                if isinstance(exc, TimeoutError) and self.timeout is not None:
                    message = f"node {self.node_id!r} ran past its {self.timeout:g}s timeout"
                retryable = self.retry is not None and code.value in self.retry.retry_on
                last = not retryable or attempt >= (self.retry.max_attempts if self.retry else 1)
                if last and retryable and self.retry is not None and self.retry.max_attempts > 1:
                    message = (
                        f"failed after {attempt} attempts; last error ({code.value}): {message}"
                    )
                    code = ErrorCode.RETRY_EXHAUSTED
                recorder.step(
                    node_id=step_name,
                    node_type=self.node_type,
                    task_id=task_id,
                    attempt=attempt,
                    started_at=started,
                    error_code=code,
                    error_message=message,
                )
                # The record is durable before LangGraph saves the outcome (seed 003):
                # committed now, or queued ahead of the task's writes on the same writer.
                await recorder.settle()
                if not last and self.retry is not None:
                    await asyncio.sleep(backoff(self.retry, attempt))
                    continue
                if self.on_error is not None and self.on_error.action != "fail":
                    return self._recover(state, rc)
                raise error_for_code(code, message) from exc
            result = out.result
            if result is None:
                result = {k: to_view(v) for k, v in out.update.items() if not k.startswith("__")}
                if out.branch is not None:
                    result = {**result, "branch": out.branch}
            recorder.step(
                node_id=step_name,
                node_type=self.node_type,
                task_id=task_id,
                attempt=attempt,
                started_at=started,
                result=result,
            )
            # A top-level node that returns an update: LangGraph saves its writes next, and
            # the record joins that commit.
            await recorder.settle(
                followed=rc.writes_saved and not rc.step_prefix and bool(out.update)
            )
            return self._to_langgraph(out, state, rc)

    def _goto_for(self, branch: str | None) -> list[str] | None:
        if self.branch_targets is not None and branch is not None:
            targets = self.branch_targets.get(branch)
            if targets is None and branch == "exhausted":
                targets = self.branch_targets.get("done")
            if targets is None:
                raise NodeExecutionError(
                    f"node {self.node_id!r} took branch {branch!r}, which has no edge"
                )
            return list(targets)
        if self.static_goto is not None:
            return list(self.static_goto)
        return None

    def _to_langgraph(self, out: NodeOutput, state: dict[str, Any], rc: RunContext) -> Any:
        goto = self._goto_for(out.branch)
        update = dict(out.update)
        if goto is None:
            return self._routed(update, state, rc)
        return Command(update=update, goto=goto)

    def _routed(self, update: dict[str, Any], state: dict[str, Any], rc: RunContext) -> Any:
        # The node's `when` edges, taken after its step is recorded (an E007 here fails the
        # task as a LangGraph router's would, after the step completed).
        if self.route is None:
            return update
        return Command(update=update, goto=self.route.targets(self.after(state, update), rc))

    def _recover(self, state: dict[str, Any], rc: RunContext) -> Any:
        assert self.on_error is not None
        update = dict(self.on_error.update or {})
        if self.on_error.action == "route" and self.on_error.to:
            return Command(update=update, goto=self.on_error.to)
        goto = self.static_goto
        if goto is not None:
            return Command(update=update, goto=list(goto))
        return self._routed(update, state, rc)
