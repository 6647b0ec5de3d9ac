"""The node executor protocol, the context a node runs with, and a base class for node types.

A node type is a class with a ``type_name``, a pydantic ``config_model`` and an async
``run(ctx)``. The compiler builds one instance per node of a workflow (so expressions are
compiled once), wraps it with retries, timeouts and step recording, and hands it a fresh
``NodeContext`` on every attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from graph_runtime.errors import ExpressionError
from graph_runtime.expressions import (
    MISS,
    Expression,
    Scope,
    Template,
    compile_expression,
    compile_template,
)
from graph_runtime.models import ErrorCode

__all__ = [
    "PRIVATE_PREFIX",
    "BaseNode",
    "ExpressionRef",
    "NodeContext",
    "NodeExecutor",
    "NodeOutput",
    "SubStep",
    "pointer",
    "public_state",
]

logger = logging.getLogger(__name__)

#: State keys the runtime owns start with this prefix; documents cannot declare or write them.
PRIVATE_PREFIX = "__"
INPUT_KEY = "__run_input__"  # "__input__" is reserved by LangGraph
OUTPUT_KEY = "__output__"
LOOPS_KEY = "__loops__"
MAP_KEY = "__map__"
ITEM_KEY = "__item__"
INDEX_KEY = "__index__"


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts: ``pointer("set", "a/b")`` is ``/set/a~1b``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def public_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state without the runtime's private keys."""
    return {k: v for k, v in state.items() if not k.startswith(PRIVATE_PREFIX)}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpressionRef:
    """An expression or template inside a node's config, for validation."""

    path: str
    """JSON pointer relative to the node's ``config``, e.g. ``/branches/1/when``."""
    source: str
    """The CEL source (or the template text)."""
    kind: Literal["expr", "template"] = "expr"
    extra_variables: frozenset[str] = frozenset()
    """Variables beyond the standard ones that are visible here (e.g. ``result``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeOutput:
    """What a node produced: a state update and, for branching nodes, the branch taken."""

    update: Mapping[str, Any] = field(default_factory=dict)
    """Written through each key's reducer."""
    branch: str | None = None
    """The branch name taken (condition, loop, human)."""
    result: Any = None
    """What the step record shows; defaults to the public part of ``update`` (+ branch)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubStep:
    """A step inside a node attempt (one tool call), recorded as its own step ``<node>.<name>``."""

    name: str
    """Recorded as ``<node id>.<name>``, e.g. ``write.orders.refund_status``."""
    key: str
    """Unique within the node attempt and the same when the attempt re-executes (idempotency)."""
    started_at: dt.datetime
    node_type: str = "tool"
    result: Any = None
    error_code: ErrorCode | None = None
    error_message: str | None = None


class NodeContext:
    """Everything a node attempt can see: state, input, run info, writers and services."""

    __slots__ = (
        "_scope",
        "_variables",
        "attempt",
        "extra",
        "log",
        "models",
        "node_id",
        "node_type",
        "record_step",
        "run",
        "services",
        "state",
        "writer",
    )

    def __init__(
        self,
        *,
        node_id: str,
        node_type: str,
        state: Mapping[str, Any],
        run: Mapping[str, Any],
        attempt: int = 1,
        extra: Mapping[str, Any] | None = None,
        writer: Callable[[Any], None] | None = None,
        log: Callable[[str, str], None] | None = None,
        services: Mapping[str, Any] | None = None,
        record_step: Callable[[SubStep], None] | None = None,
        models: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.state = state
        """The node's input state (private keys included)."""
        self.run = run
        """``{"id", "workflow_id", "version", "attempt"}``."""
        self.attempt = attempt
        self.extra = extra or {}
        """Extra expression variables: ``item``/``index`` (or the map's ``as``) in map targets."""
        self.writer = writer or (lambda _chunk: None)
        """Sends a ``custom`` event to stream subscribers."""
        self.log = log or (lambda level, msg: logger.log(logging.getLevelName(level.upper()), msg))
        """``log(level, message)`` records a run log line."""
        self.services = services or {}
        """Server-side registries (models, tools, credentials) for AI and integration nodes."""
        self.record_step = record_step or (lambda _step: None)
        """Records a step inside this attempt (a tool call) as its own ``TaskStepResult``."""
        self.models = models or {}
        """The workflow document's ``models`` map (alias → spec); resolved by the model factory."""
        self._variables: dict[str, Any] | None = None
        self._scope: Scope | None = None

    @property
    def input(self) -> Mapping[str, Any]:
        """The run's original input."""
        value = self.state.get(INPUT_KEY)
        return value if isinstance(value, Mapping) else {}

    @property
    def variables(self) -> dict[str, Any]:
        """The expression variables, every one converted (computed once per attempt)."""
        if self._variables is None:
            scope = self.scope
            # The order of `{"state", "input", "run", **extra}`; an extra name keeps its place.
            names = ("state", "input", "run", *self.extra)
            self._variables = {name: scope[name] for name in names}
        return self._variables

    @property
    def scope(self) -> Scope:
        """The expression variables, each converted when an expression first reads it.

        ``evaluate`` and ``render`` go through it, so an expression that reads
        ``state.count`` converts that key only, not the whole state.
        """
        if self._scope is None:
            extra = self.extra
            # The precedence of `{"state", "input", "run", **extra}`: an extra name wins.
            views = {} if "run" in extra else {"run": dict(self.run)}
            self._scope = Scope(public_state(self.state), {"input": self.input, **extra}, views)
        return self._scope

    def evaluate(self, expr: Expression, field: str, **more: Any) -> Any:
        """Evaluate ``expr``; errors are E007 tagged with this node and ``field``."""
        if (lane := expr.state_lane) is not None and not more and "state" not in self.extra:
            if (value := lane({"state": self.state})) is not MISS:
                return value
        scope = self.scope.with_views(more) if more else self.scope
        try:
            return expr.evaluate(scope)
        except ExpressionError as exc:
            raise exc.located(node_id=self.node_id, field=field) from None

    def render(self, template: Template, field: str) -> str:
        """Render ``template``; errors are E007 tagged with this node and ``field``."""
        try:
            return template.render(self.scope)
        except ExpressionError as exc:
            raise exc.located(node_id=self.node_id, field=field) from None


@runtime_checkable
class NodeExecutor(Protocol):
    """A node type. Implement it (or subclass ``BaseNode``) and register it to add a type."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Execute one attempt of the node."""
        ...

    @classmethod
    def expressions(cls, config: Any) -> list[ExpressionRef]:
        """The expressions and templates in ``config`` (checked before any run)."""
        ...

    @classmethod
    def writes(cls, config: Any) -> set[str]:
        """The state keys the node writes (inferred state and key checks)."""
        ...

    @classmethod
    def branches(cls, config: Any) -> list[str] | None:
        """The branch names the node can take, or None for a non-branching node."""
        ...


ConfigT = TypeVar("ConfigT", bound=BaseModel)


class BaseNode(Generic[ConfigT]):
    """Convenience base: keeps the parsed config and compiles expressions once per node."""

    type_name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    #: Extra variables visible to this node's expressions (e.g. the map's item variable).
    extra_variables: frozenset[str] = frozenset()
    #: The runtime's own state keys (``LOOPS_KEY``...) that ``run`` writes. Read from the
    #: class that declares it, not inherited (a subclass may write more): a type that does not
    #: declare it may write any of them, and the compiler then declares them all as channels.
    runtime_writes: ClassVar[frozenset[str] | None] = None

    def __init__(
        self, node_id: str, config: ConfigT, *, extra_variables: frozenset[str] = frozenset()
    ):
        self.node_id = node_id
        self.config = config
        self.extra_variables = extra_variables

    def expr(self, source: str) -> Expression:
        """Compile an expression visible to this node."""
        return compile_expression(source, extra_variables=self.extra_variables)

    def template(self, text: str) -> Template:
        """Compile a template visible to this node."""
        return compile_template(text, extra_variables=self.extra_variables)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Execute one attempt of the node."""
        raise NotImplementedError

    @classmethod
    def expressions(cls, config: Any) -> list[ExpressionRef]:
        """No expressions unless the type says otherwise."""
        return []

    @classmethod
    def writes(cls, config: Any) -> set[str]:
        """Writes nothing unless the type says otherwise."""
        return set()

    @classmethod
    def branches(cls, config: Any) -> list[str] | None:
        """Not a branching node unless the type says otherwise."""
        return None
