"""A fluent Python builder for workflow documents (format ``graph-runtime/workflow/v1``).

The builder writes the same JSON a person would, so a document can move freely between
Python, files and the HTTP API::

    wf = (
        Workflow("greet", name="Greeter")
        .state("name", type="string")
        .state("greeting", type="string", default="")
        .node("start", "input", schema={"type": "object", "required": ["name"]})
        .node("hello", "template", template="Hello {{ state.name }}", output="greeting")
        .node("result", "output", select={"greeting": "state.greeting"})
        .edge("__start__", "start").edge("start", "hello").edge("hello", "result")
    )
    wf.validate()  # every problem, with its JSON pointer; never raises
    wf.save("greet.json")

The builder checks nothing itself: ``validate()`` and ``build()`` run the checks the server
runs, so a document is judged the same way wherever it was written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from graph_runtime.compiler import Compiler
from graph_runtime.errors import Problem
from graph_runtime.schema import SCHEMA_URI, WorkflowDefinition
from graph_runtime.sdk._document import (
    MISSING,
    NODE_FIELDS,
    config_key,
    document_problems,
    edge_links,
    endpoint,
    given,
    ordered,
    without_node,
)
from graph_runtime.validation import load_workflow
from nodes.registry import NodeRegistry

__all__ = ["Workflow", "document_problems"]


class Workflow:
    """A workflow document under construction; every method returns ``self`` for chaining."""

    def __init__(
        self,
        id: str | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        schema: str = SCHEMA_URI,
    ) -> None:
        """Start a document.

        Args:
            id: the workflow id (a slug); may be left out and given when the document is run.
            name: a human-readable title.
            description: what the workflow does.
            schema: the format URI.
        """
        self._doc: dict[str, Any] = given(
            {"schema": schema, "id": id, "name": name, "description": description}
        )

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Workflow:
        """A builder holding a copy of an existing document, ready to edit.

        Every key is kept as it is, unknown ones included, so ``validate()`` reports the
        document's problems instead of the builder hiding them.
        """
        wf = cls.__new__(cls)
        wf._doc = copy.deepcopy(dict(document))
        return wf

    @classmethod
    def load(cls, path: str | Path) -> Workflow:
        """A builder holding the document in a JSON file.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file is not a JSON object.
        """
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a workflow document must be a JSON object")
        return cls.from_dict(data)

    # -- top level ----------------------------------------------------------------------------

    def describe(self, *, name: str | None = None, description: str | None = None) -> Self:
        """Set the title and/or the description."""
        self._doc.update(given({"name": name, "description": description}))
        return self

    def settings(
        self,
        *,
        recursion_limit: int | None = None,
        timeout_seconds: float | None = None,
        durability: Literal["sync", "async", "exit"] | None = None,
        max_concurrency: int | None = None,
        expected_steps: int | None = None,
        breakpoints: Mapping[str, Sequence[str]] | None = None,
    ) -> Self:
        """Set run-wide settings; only the arguments given are written."""
        values = {
            "recursion_limit": recursion_limit,
            "timeout_seconds": timeout_seconds,
            "durability": durability,
            "max_concurrency": max_concurrency,
            "expected_steps": expected_steps,
            "breakpoints": {k: list(v) for k, v in breakpoints.items()} if breakpoints else None,
        }
        self._section("settings", dict).update(given(values))
        return self

    def defaults(
        self,
        *,
        retry: Mapping[str, Any] | None = None,
        timeout: float | Mapping[str, Any] | None = None,
        cache: Mapping[str, Any] | None = None,
        on_error: Mapping[str, Any] | None = None,
    ) -> Self:
        """Set the policies every node gets unless it sets its own."""
        values = {"retry": retry, "timeout": timeout, "cache": cache, "on_error": on_error}
        self._section("defaults", dict).update(given(values))
        return self

    def model(
        self,
        alias: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        ref: str | None = None,
    ) -> Self:
        """Declare a model alias (resolved by the server's model factory)."""
        spec = {"provider": provider, "model": model, "params": params, "ref": ref}
        self._section("models", dict)[alias] = given(spec)
        return self

    def tools(self, *names: str) -> Self:
        """Allow tools from the server's registry (each name once)."""
        section = self._section("tools", list)
        section.extend(n for n in names if n not in section)
        return self

    def state(
        self,
        key: str,
        *,
        type: str | Sequence[str] | None = None,
        reducer: str | None = None,
        default: Any = MISSING,
        description: str | None = None,
        enum: Sequence[Any] | None = None,
        items: Mapping[str, Any] | None = None,
    ) -> Self:
        """Declare (or redeclare) a state key.

        Args:
            key: the state key.
            type: a JSON-Schema type, a list of them, or ``"messages"``.
            reducer: ``replace`` (default), ``append``, ``merge``, ``add`` or ``messages``.
            default: the initial value; ``None`` is a value, leave it out for no default.
            description: what the key holds.
            enum: the allowed values.
            items: JSON Schema of the items of an array.
        """
        spec = given({"type": type if isinstance(type, str | None) else list(type)})
        spec.update(given({"reducer": reducer}))
        if default is not MISSING:  # None is a default like any other value
            spec["default"] = copy.deepcopy(default)
        enum_list = list(enum) if enum is not None else None
        spec.update(given({"description": description, "enum": enum_list, "items": items}))
        self._section("state", dict)[key] = spec
        return self

    def entry(self, node_id: str) -> Self:
        """Sugar for an edge from ``__start__``."""
        self._doc["entry"] = node_id
        return self

    def finish(self, *node_ids: str) -> Self:
        """Sugar for edges to ``__end__``."""
        self._doc["finish"] = node_ids[0] if len(node_ids) == 1 else list(node_ids)
        return self

    # -- nodes and edges ----------------------------------------------------------------------

    def node(
        self,
        id: str,
        type: str,
        *,
        name: str | None = None,
        description: str | None = None,
        retry: Mapping[str, Any] | None = None,
        timeout: float | Mapping[str, Any] | None = None,
        cache: Mapping[str, Any] | None = None,
        on_error: Mapping[str, Any] | None = None,
        interrupt: Literal["before", "after"] | None = None,
        defer: bool | None = None,
        ui: Any = None,
        metadata: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """Add a node.

        Keyword arguments other than the common node fields go into ``config``; spell Python
        keywords with a trailing underscore (``as_=``, ``while_=``). ``config=`` takes fields
        whose names clash with a common field (a ``human`` node's ``timeout``).

        Args:
            id: the node id.
            type: the node type, e.g. ``"condition"``.
            name: a display name.
            description: what the node does.
            retry: the retry policy.
            timeout: seconds per attempt, or ``{"run": ..., "idle": ...}``.
            cache: the cache policy.
            on_error: what happens after the node failed for good.
            interrupt: pause ``"before"`` or ``"after"`` the node.
            defer: run after every pending branch (a safe join).
            ui: editor data, never read by the compiler.
            metadata: free-form data copied to the LangGraph node.
            config: config fields given as a mapping.
            **options: config fields.
        """
        cfg = copy.deepcopy(dict(config or {}))
        cfg.update({config_key(k): copy.deepcopy(v) for k, v in options.items()})
        common = {
            "name": name,
            "description": description,
            "retry": retry,
            "timeout": timeout,
            "cache": cache,
            "on_error": on_error,
            "interrupt": interrupt,
            "defer": defer,
            "ui": ui,
            "metadata": metadata,
        }
        node: dict[str, Any] = {"id": id, "type": type, **({"config": cfg} if cfg else {})}
        self._section("nodes", list).append({**node, **given(common)})
        return self

    def get_node(self, node_id: str) -> dict[str, Any]:
        """The node's mapping (live: changing it changes the document).

        Raises:
            KeyError: there is no such node.
        """
        for node in self._list("nodes"):
            if isinstance(node, dict) and node.get("id") == node_id:
                return node
        raise KeyError(node_id)

    def update_node(self, node_id: str, **changes: Any) -> Self:
        """Change a node: ``type`` and common fields by name, anything else in ``config``.

        A value of ``None`` removes the field.

        Raises:
            KeyError: there is no such node.
        """
        node = self.get_node(node_id)
        for key, value in changes.items():
            common = key in NODE_FIELDS or key == "type"
            target = node if common else node.setdefault("config", {})
            name = key if common else config_key(key)
            if value is None:
                target.pop(name, None)
            else:
                target[name] = copy.deepcopy(value)
        if node.get("config") == {}:
            del node["config"]
        return self

    def remove_node(self, node_id: str) -> Self:
        """Remove a node and every edge end that names it (an edge left without an end goes)."""
        self._doc["nodes"] = [
            n for n in self._list("nodes") if not (isinstance(n, dict) and n.get("id") == node_id)
        ]
        self._doc["edges"] = without_node(self._list("edges"), node_id)
        return self

    def edge(
        self,
        source: str | Sequence[str],
        target: str | Sequence[str],
        *,
        branch: str | None = None,
        when: str | None = None,
        otherwise: bool = False,
        ui: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Self:
        """Add an edge.

        Args:
            source: the source node id (``__start__`` allowed), or a list for a join.
            target: the target node id (``__end__`` allowed), or a list for a fan-out.
            branch: the branch of a ``condition``/``loop``/``human`` source it belongs to.
            when: a CEL condition; ``when`` edges out of a node are tried in order.
            otherwise: the fallback of ``when`` edges (written as ``"else": true``).
            ui: editor data.
            metadata: free-form data.
        """
        edge = {"from": endpoint(source), "to": endpoint(target)}
        optional = {"branch": branch, "when": when, "else": otherwise or None}
        self._section("edges", list).append(
            {**edge, **given(optional), **given({"ui": ui, "metadata": metadata})}
        )
        return self

    def remove_edges(self, source: str, target: str | None = None) -> Self:
        """Remove the edges from ``source`` (only those reaching ``target`` when given)."""
        self._doc["edges"] = [e for e in self._list("edges") if not edge_links(e, source, target)]
        return self

    # -- output -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (a copy): sections in a stable order, empty sections left out."""
        return ordered(self._doc)

    def to_json(self, indent: int | None = 2) -> str:
        """The document as JSON text (non-ASCII characters kept as they are)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write the document to a JSON file (with a final newline); returns the path."""
        target = Path(path)
        target.write_text(self.to_json() + "\n", encoding="utf-8")
        return target

    def validate(self, *, registry: NodeRegistry | None = None) -> list[Problem]:
        """Every problem of the document, warnings included; never raises for document problems."""
        return document_problems(self.to_dict(), registry=registry)[1]

    def build(self, *, registry: NodeRegistry | None = None) -> WorkflowDefinition:
        """The checked ``WorkflowDefinition``.

        Raises:
            WorkflowValidationError: the document has errors (all of them, with pointers).
        """
        return load_workflow(self.to_dict(), registry=registry)

    def draw(self, *, registry: NodeRegistry | None = None) -> str:
        """The graph as a Mermaid diagram, drawn by LangGraph from the compiled graph.

        Raises:
            WorkflowValidationError: the document has errors.
        """
        definition = self.build(registry=registry)
        # No checkpointer: drawing needs the graph's shape, not a database.
        return Compiler(None, registry=registry).compile(definition).draw()

    # -- helpers ------------------------------------------------------------------------------

    def _section(self, key: str, kind: type[dict[str, Any]] | type[list[Any]]) -> Any:
        value = self._doc.setdefault(key, kind())
        if not isinstance(value, kind):
            raise TypeError(
                f"the document's {key!r} is a {type(value).__name__}, not a {kind.__name__}"
            )
        return value

    def _list(self, key: str) -> list[Any]:
        value = self._doc.get(key)
        return value if isinstance(value, list) else []

    def __repr__(self) -> str:
        nodes, edges = len(self._list("nodes")), len(self._list("edges"))
        return f"Workflow(id={self._doc.get('id')!r}, nodes={nodes}, edges={edges})"
