"""The workflow JSON document (format ``graph-runtime/workflow/v1``) as pydantic models.

Parsing happens in two phases so that every problem is reported at once with a JSON pointer:

1. the document's shape (``WorkflowDefinition``, ``extra="forbid"``), where each node's
   ``config`` is kept as a raw mapping;
2. each node's ``config`` against the config model of its type in the node registry, so that
   node types registered from Python are first-class and an unknown type can suggest the
   closest known one.

Graph-level rules (WORKFLOW.md §2.3) live in ``validation.py``.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from graph_runtime.errors import Problem, WorkflowValidationError
from nodes.registry import NodeRegistry, default_registry

__all__ = [
    "SCHEMA_URI",
    "CachePolicySpec",
    "EdgeSpec",
    "NodeSpec",
    "OnErrorSpec",
    "RetrySpec",
    "Settings",
    "StateField",
    "TimeoutSpec",
    "WorkflowDefinition",
    "node_config",
    "parse_workflow",
    "pointer",
    "workflow_json_schema",
]

SCHEMA_URI = "graph-runtime/workflow/v1"
KNOWN_SCHEMAS = frozenset({SCHEMA_URI})
START = "__start__"
END = "__end__"
ID_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
MAX_DOCUMENT_BYTES = 1_000_000
MAX_NODES = 500
MAX_EDGES = 2000

ErrorCodeStr = Literal["E001", "E002", "E003", "E004", "E005", "E006", "E007"]
JsonType = Literal["string", "number", "integer", "boolean", "object", "array", "null", "messages"]
Reducer = Literal["replace", "append", "merge", "add", "messages"]


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts: ``pointer("nodes", 4)`` is ``/nodes/4``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetrySpec(_Model):
    """How a failing node is retried; every attempt is a step record, exhaustion is E005."""

    max_attempts: int = Field(default=3, description="Attempts in all, including the first.")
    initial_interval: float = Field(default=0.5, ge=0, description="Seconds before the retry.")
    backoff_factor: float = Field(default=2.0, ge=1, description="Multiplier per attempt.")
    max_interval: float = Field(default=30.0, ge=0, description="Cap on one delay (seconds).")
    jitter: bool = Field(default=True, description="Randomise delays by up to 25%.")
    retry_on: list[ErrorCodeStr] = Field(
        default_factory=lambda: ["E002", "E003"],  # type: ignore[arg-type,return-value]
        description="Error codes that are retried.",
    )


class TimeoutSpec(_Model):
    """Per-node time limits in seconds."""

    run: float | None = Field(default=None, description="Bound on one attempt of the node.")
    idle: float | None = Field(default=None, description="Bound on a silent stretch.")


class CachePolicySpec(_Model):
    """Cache a node's result keyed by the listed state keys."""

    ttl: int | None = Field(default=None, description="Seconds a cached result lives.")
    key: list[str] | None = Field(default=None, description="State keys that form the key.")


class OnErrorSpec(_Model):
    """What happens after a node failed for good."""

    action: Literal["fail", "continue", "route"] = Field(default="fail")
    update: dict[str, Any] | None = Field(default=None, description="State update to apply.")
    to: str | None = Field(default=None, description="Node to go to with action 'route'.")


class Policies(_Model):
    """The policy blocks shared by nodes and ``defaults``."""

    retry: RetrySpec | None = None
    timeout: float | TimeoutSpec | None = None
    cache: CachePolicySpec | None = None
    on_error: OnErrorSpec | None = None

    def timeout_seconds(self) -> float | None:
        """The per-attempt bound, whichever form ``timeout`` took."""
        if isinstance(self.timeout, TimeoutSpec):
            return self.timeout.run
        return self.timeout


class Breakpoints(_Model):
    """Static breakpoints: the run pauses before/after these nodes."""

    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)


class Settings(_Model):
    """Run-wide settings."""

    recursion_limit: int = Field(default=100, ge=1, le=100_000)
    timeout_seconds: float | None = Field(default=None, description="Bound on the whole run.")
    durability: Literal["sync", "async", "exit"] = Field(default="sync")
    max_concurrency: int | None = Field(default=None, ge=1, le=1000)
    expected_steps: int | None = Field(default=None, ge=1, description="Progress denominator.")
    breakpoints: Breakpoints = Field(default_factory=Breakpoints)


class StateField(_Model):
    """One state key: its JSON type, reducer and default."""

    type: JsonType | list[JsonType] | None = Field(default=None, description="None = any.")
    reducer: Reducer = "replace"
    default: Any = Field(default=None, description="Initial value.")
    description: str | None = None
    enum: list[Any] | None = None
    items: dict[str, Any] | None = Field(default=None, description="JSON Schema of items.")

    @property
    def has_default(self) -> bool:
        """True when the document gave a default."""
        return "default" in self.model_fields_set


class NodeSpec(Policies):
    """A node: its type, its type-specific config and its policies."""

    id: str = Field(description="Unique node id.")
    type: str = Field(description="Node type, e.g. 'condition'.")
    name: str | None = None
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="Type-specific config.")
    interrupt: Literal["before", "after"] | None = None
    defer: bool = False
    ui: Any = None
    metadata: dict[str, Any] | None = None


class EdgeSpec(_Model):
    """An edge; ``from``/``to`` may be lists (join / fan-out)."""

    source: str | list[str] = Field(alias="from")
    target: str | list[str] = Field(alias="to")
    branch: str | None = None
    when: str | None = None
    else_: bool = Field(default=False, alias="else")
    ui: Any = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _editor_spelling(cls, data: Any) -> Any:
        # Dify / React-Flow documents say source/target/sourceHandle.
        if isinstance(data, Mapping) and ("source" in data or "target" in data):
            data = dict(data)
            # Editors put sourceHandle "source" (or null) on ordinary edges: not a branch.
            if data.get("sourceHandle") in (None, "source"):
                data.pop("sourceHandle", None)
            for old, new in (("source", "from"), ("target", "to"), ("sourceHandle", "branch")):
                if old in data and new not in data:
                    data[new] = data.pop(old)
            for editor_only in ("id", "targetHandle", "type", "data", "selected", "animated"):
                data.pop(editor_only, None)
        return data

    @property
    def sources(self) -> list[str]:
        """``from`` as a list."""
        return [self.source] if isinstance(self.source, str) else list(self.source)

    @property
    def targets(self) -> list[str]:
        """``to`` as a list."""
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @property
    def conditional(self) -> bool:
        """True for branch, ``when`` and ``else`` edges."""
        return self.branch is not None or self.when is not None or self.else_


class WorkflowDefinition(_Model):
    """A whole workflow document."""

    schema_: str = Field(default=SCHEMA_URI, alias="schema", description="Format URI.")
    id: str = Field(default="workflow", pattern=ID_PATTERN)
    name: str | None = None
    description: str | None = None
    version: int | None = Field(default=None, description="Assigned by the store on save.")
    settings: Settings = Field(default_factory=Settings)
    defaults: Policies = Field(default_factory=Policies)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)
    state: dict[str, StateField] | None = Field(
        default=None, description="Declared state; inferred when absent."
    )
    nodes: list[NodeSpec] = Field(min_length=1, max_length=MAX_NODES)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=MAX_EDGES)
    entry: str | None = Field(default=None, description="Sugar for an edge from __start__.")
    finish: str | list[str] | None = Field(default=None, description="Sugar for edges to __end__.")
    ui: Any = None
    metadata: dict[str, Any] | None = None

    @field_validator("schema_")
    @classmethod
    def _known_schema(cls, value: str) -> str:
        if value not in KNOWN_SCHEMAS:
            raise ValueError(f"unknown schema {value!r}; expected {SCHEMA_URI!r}")
        return value

    @property
    def state_inferred(self) -> bool:
        """True when the document declared no ``state``."""
        return self.state is None

    def node(self, node_id: str) -> NodeSpec:
        """The node with this id (``KeyError`` if none)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def to_document(self) -> dict[str, Any]:
        """The canonical JSON form (aliases, unset fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @property
    def content_hash(self) -> str:
        """A stable hash of the canonical document (cache key for compiled graphs)."""
        canon = json.dumps(self.to_document(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:32]


def _problems_from_pydantic(
    exc: pydantic.ValidationError, prefix: Sequence[str | int] = ()
) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # Unions report the failing member in the loc ('float', 'TimeoutSpec'); drop those.
        loc = [p for p in loc if not (isinstance(p, str) and p[:1].isupper())]
        loc = [
            p for p in loc if p not in ("float", "str", "list[str]", "list[...]", "constrained-str")
        ]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        elif err["type"] == "missing":
            msg = f"missing required field {loc[-1]!r}" if loc else "missing required field"
        problems.append(Problem(path=pointer(*prefix, *loc), message=msg))
    # Unions produce one error per member for the same spot; keep the first of each.
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            unique.append(p)
    return unique


def parse_workflow(
    data: Mapping[str, Any] | str | bytes,
    *,
    workflow_id: str | None = None,
    registry: NodeRegistry | None = None,
) -> WorkflowDefinition:
    """Parse shape and node configs; raise ``WorkflowValidationError`` with all problems.

    Args:
        data: the document, as a mapping or as JSON text.
        workflow_id: the id to use when the document has none (minimal documents).
        registry: node types to check configs against (default: the built-in registry).
    """
    registry = registry or default_registry
    if isinstance(data, str | bytes):
        if len(data) > MAX_DOCUMENT_BYTES:
            raise WorkflowValidationError([Problem(path="", message="document over 1 MB")])
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise WorkflowValidationError(
                [Problem(path="", message=f"not JSON: {exc.msg} (line {exc.lineno})")]
            ) from exc
        except UnicodeDecodeError as exc:
            raise WorkflowValidationError([Problem(path="", message="not UTF-8 text")]) from exc
        except RecursionError as exc:
            raise WorkflowValidationError(
                [Problem(path="", message="JSON nested too deeply")]
            ) from exc
    if not isinstance(data, Mapping):
        raise WorkflowValidationError(
            [Problem(path="", message="a workflow must be a JSON object")]
        )
    doc = dict(data)
    if "id" not in doc and workflow_id is not None:
        doc["id"] = workflow_id
    try:
        definition = WorkflowDefinition.model_validate(doc)
    except pydantic.ValidationError as exc:
        problems = _problems_from_pydantic(exc)
        # Node configs can still be checked where the node itself had the right shape.
        problems += _check_raw_node_configs(doc.get("nodes"), registry)
        raise WorkflowValidationError(problems) from exc
    problems = _check_node_configs(definition, registry)
    if problems:
        raise WorkflowValidationError(problems)
    return definition


def _check_raw_node_configs(nodes: Any, registry: NodeRegistry) -> list[Problem]:
    if not isinstance(nodes, list):
        return []
    problems: list[Problem] = []
    for i, node in enumerate(nodes):
        if isinstance(node, Mapping) and isinstance(node.get("type"), str):
            config = node.get("config", {})
            problems += _check_config(i, node["type"], config, registry)
    return problems


def _check_node_configs(definition: WorkflowDefinition, registry: NodeRegistry) -> list[Problem]:
    problems: list[Problem] = []
    for i, node in enumerate(definition.nodes):
        problems += _check_config(i, node.type, node.config, registry)
    return problems


def _check_config(index: int, node_type: str, config: Any, registry: NodeRegistry) -> list[Problem]:
    if node_type not in registry:
        close = difflib.get_close_matches(node_type, registry.types(), n=1, cutoff=0.5)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else f"; known types: {', '.join(registry.types())}"
        )
        return [
            Problem(
                path=pointer("nodes", index, "type"),
                message=f"unknown node type {node_type!r}{hint}",
            )
        ]
    try:
        registry.get(node_type).config_model.model_validate(config)
    except pydantic.ValidationError as exc:
        return _problems_from_pydantic(exc, ("nodes", index, "config"))
    return []


def node_config(node: NodeSpec, registry: NodeRegistry | None = None) -> BaseModel:
    """The node's config parsed into its type's config model (the document must be parsed)."""
    return (registry or default_registry).get(node.type).config_model.model_validate(node.config)


def workflow_json_schema(registry: NodeRegistry | None = None) -> dict[str, Any]:
    """The JSON Schema of the document, with each node type's config spelled out."""
    registry = registry or default_registry
    schema = copy.deepcopy(WorkflowDefinition.model_json_schema(by_alias=True))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "graph-runtime workflow (graph-runtime/workflow/v1)"
    defs = schema.setdefault("$defs", {})
    node_schema = defs["NodeSpec"]
    node_schema["properties"]["type"]["enum"] = list(registry.types())
    branches = []
    for type_name in registry.types():
        model = registry.get(type_name).config_model
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        for name, sub_def in sub.pop("$defs", {}).items():
            defs.setdefault(name, sub_def)
        title = f"{type_name}Config"
        defs[title] = sub
        branches.append(
            {
                "if": {"properties": {"type": {"const": type_name}}, "required": ["type"]},
                "then": {"properties": {"config": {"$ref": f"#/$defs/{title}"}}},
            }
        )
    node_schema["allOf"] = branches
    return schema
