"""Whole-document checks of a parsed workflow (WORKFLOW.md §2.3), reported all at once.

``schema.parse_workflow`` covers rules 1-3 (shape, node types, per-type config). This module
covers the rest: ids, the graph (in ``_validation_graph``), expressions, state keys and
reducers, JSON Schemas, policies, limits, and (in ``_validation_refs``) names resolved against
server registries and the workflow store.
``load_workflow`` runs both and raises one ``WorkflowValidationError`` with every problem.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from typing import Any

import pydantic
from jsonschema import validators
from jsonschema.exceptions import SchemaError

from graph_runtime._validation_graph import Checker, check_graph, did_you_mean, key_pointer
from graph_runtime._validation_refs import Resolver, check_references, check_subgraphs
from graph_runtime.errors import ExpressionCompileError, Problem, WorkflowValidationError
from graph_runtime.expressions import compile_expression, compile_template
from graph_runtime.models import ErrorCode
from graph_runtime.schema import (
    END,
    MAX_DOCUMENT_BYTES,
    OnErrorSpec,
    Policies,
    TimeoutSpec,
    WorkflowDefinition,
    node_config,
    parse_workflow,
    pointer,
)
from graph_runtime.topology import topology
from nodes.registry import NodeRegistry, default_registry

__all__ = ["Resolver", "check_workflow", "load_workflow"]

logger = logging.getLogger(__name__)

#: Config fields that hold a JSON Schema, in any node type (rule 19).
SCHEMA_FIELDS = ("schema", "structured_output", "response_schema")
#: The error codes a retry policy may name (rule 20).
ERROR_CODES = frozenset(code.value for code in ErrorCode)
#: Which state types each reducer can combine (rule 15).
REDUCER_TYPES = {
    "append": frozenset({"array"}),
    "merge": frozenset({"object"}),
    "add": frozenset({"number", "integer"}),
    "messages": frozenset({"messages"}),
}


def check_workflow(
    definition: WorkflowDefinition,
    *,
    registry: NodeRegistry | None = None,
    models: Collection[str] | None = None,
    tools: Collection[str] | None = None,
    credentials: Collection[str] | None = None,
    resolve_workflow: Resolver | None = None,
) -> list[Problem]:
    """Every problem of a parsed document, errors and warnings, without stopping at the first.

    Args:
        definition: a document from ``parse_workflow``.
        registry: node types (default: the built-in registry).
        models: the server's model aliases; None skips the check.
        tools: the server's tool names; None skips the check.
        credentials: the server's credential names; None skips the check.
        resolve_workflow: looks up subgraph references; None skips the check.

    Returns:
        The problems in rule order; ``Problem.severity`` tells errors from warnings.
    """
    c = Checker(definition=definition, registry=registry or default_registry)
    _check_ids(c)
    _parse_configs(c)
    try:
        c.topo = topology(definition, c.registry)
    except pydantic.ValidationError:
        pass  # a map config that does not parse is reported above; the graph rules need it
    check_graph(c, lambda key: _reducer(definition, key))
    _check_expressions(c)
    _check_state(c)
    _check_schemas(c)
    _check_policies(c)
    check_references(c, models=models, tools=tools, credentials=credentials)
    if resolve_workflow is not None:
        check_subgraphs(c, resolve_workflow)
    return c.problems


def load_workflow(
    data: Mapping[str, Any] | str | bytes,
    *,
    workflow_id: str | None = None,
    registry: NodeRegistry | None = None,
    models: Collection[str] | None = None,
    tools: Collection[str] | None = None,
    credentials: Collection[str] | None = None,
    resolve_workflow: Resolver | None = None,
) -> WorkflowDefinition:
    """Parse and check a document; the only exception it raises is ``WorkflowValidationError``.

    Args:
        data: the document, as a mapping or JSON text.
        workflow_id: the id to use when the document has none.
        registry: node types (default: the built-in registry).
        models: the server's model aliases; None skips the check.
        tools: the server's tool names; None skips the check.
        credentials: the server's credential names; None skips the check.
        resolve_workflow: looks up subgraph references; None skips the check.

    Returns:
        The definition. Its warnings, if any, come from ``check_workflow``.

    Raises:
        WorkflowValidationError: with every error and warning, when there is any error.
    """
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")  # parse_workflow would let UnicodeDecodeError escape
        if isinstance(data, Mapping) and len(json.dumps(data, default=str)) > MAX_DOCUMENT_BYTES:
            raise WorkflowValidationError([Problem(path="", message="the document is over 1 MB")])
        definition = parse_workflow(data, workflow_id=workflow_id, registry=registry)
    except WorkflowValidationError as exc:
        raise WorkflowValidationError(_editor_paths(exc.problems, data)) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        # Bad UTF-8, deep nesting or non-JSON values trip json/pydantic before any rule runs.
        message = f"the document is not a valid JSON workflow: {type(exc).__name__}"
        raise WorkflowValidationError([Problem(path="", message=message)]) from exc
    try:
        problems = check_workflow(
            definition,
            registry=registry,
            models=models,
            tools=tools,
            credentials=credentials,
            resolve_workflow=resolve_workflow,
        )
    except Exception as exc:
        # A bug in a rule; callers were promised nothing but WorkflowValidationError.
        logger.exception("workflow check failed", extra={"action": "validate"})
        message = "the workflow could not be checked (an internal error, logged)"
        raise WorkflowValidationError([Problem(path="", message=message)]) from exc
    if any(p.severity == "error" for p in problems):
        raise WorkflowValidationError(_editor_paths(problems, data))
    return definition


def _editor_paths(problems: list[Problem], data: Any) -> list[Problem]:
    """Point at ``source``/``target``/``sourceHandle`` where an edge was written that way."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return problems
    edges = data.get("edges") if isinstance(data, Mapping) else None
    if not isinstance(edges, list):
        return problems
    renames = {"from": "source", "to": "target", "branch": "sourceHandle"}
    fixed = []
    for p in problems:
        parts = p.path.split("/")
        if len(parts) >= 4 and parts[1] == "edges" and parts[2].isdigit() and parts[3] in renames:
            edge = edges[int(parts[2])] if int(parts[2]) < len(edges) else None
            if isinstance(edge, Mapping) and parts[3] not in edge and renames[parts[3]] in edge:
                parts[3] = renames[parts[3]]
                p = Problem(
                    path="/".join(parts), message=p.message, code=p.code, severity=p.severity
                )
        fixed.append(p)
    return fixed


def _reducer(definition: WorkflowDefinition, key: str) -> str | None:
    if definition.state is None:
        return "replace"  # inferred state: every key is a replace key (WORKFLOW.md §1.0)
    declared = definition.state.get(key)
    return declared.reducer if declared is not None else None


def _check_ids(c: Checker) -> None:
    """Rules 4 and 5: ids are unique, not reserved, and free of ``:``."""
    for i, n in enumerate(c.definition.nodes):
        path = pointer("nodes", i, "id")
        if n.id in c.index:
            c.error(path, f"node id {n.id!r} is already used by node {c.index[n.id]}")
            continue
        c.index[n.id] = i
        if not n.id:
            c.error(path, f"node {i} has an empty id")
        elif n.id.startswith("__"):
            c.error(
                path, f"node id {n.id!r} is reserved: ids starting with '__' belong to the runtime"
            )
        elif ":" in n.id:
            c.error(path, f"node id {n.id!r} contains ':', which LangGraph reserves for namespaces")


def _parse_configs(c: Checker) -> None:
    """Parse each node's config (rule 3 again, for definitions not built by ``parse_workflow``)."""
    for i, n in enumerate(c.definition.nodes):
        if n.type not in c.registry:
            hint = did_you_mean(n.type, c.registry.types())
            c.error(pointer("nodes", i, "type"), f"unknown node type {n.type!r}{hint}")
            continue
        try:
            c.configs[i] = node_config(n, c.registry)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = pointer("nodes", i, "config", *first["loc"])
            c.error(where, f"node {n.id!r}: {first['msg']}")


def _map_variables(c: Checker) -> dict[str, frozenset[str]]:
    """Node id → the extra expression variables a map gives its target (``as`` and ``index``)."""
    extra: dict[str, frozenset[str]] = {}
    for m, t in c.map_targets().items():
        as_name = getattr(c.configs.get(c.index[m]), "as_", "item")
        extra[t] = extra.get(t, frozenset()) | {str(as_name), "index"}
    return extra


def _compile(
    c: Checker, path: str, who: str, source: str, kind: str, extra: frozenset[str]
) -> None:
    """Rules 13, 14 (reads) and 21 (size limits, enforced by the compiler) for one source."""
    try:
        compiled = (compile_template if kind == "template" else compile_expression)(
            source, extra_variables=extra
        )
    except ExpressionCompileError as exc:
        c.error(path, f"{who}: invalid {'template' if kind == 'template' else 'expression'}: {exc}")
        return
    except Exception:
        # A crash in the expression library must not hide the document's other problems.
        logger.exception("expression check failed", extra={"action": "validate", "path": path})
        c.error(path, f"{who}: this expression could not be checked")
        return
    state = c.definition.state
    if state is None:
        return
    for key in sorted(compiled.state_keys):
        if key not in state:
            hint = did_you_mean(key, state)
            c.error(path, f"{who} reads 'state.{key}', but {key!r} is not declared in state{hint}")


def _check_expressions(c: Checker) -> None:
    extra = _map_variables(c)
    for i, config in c.configs.items():
        n = c.definition.nodes[i]
        for ref in c.registry.get(n.type).expressions(config):
            variables = ref.extra_variables | extra.get(n.id, frozenset())
            _compile(
                c, f"/nodes/{i}/config{ref.path}", f"node {n.id!r}", ref.source, ref.kind, variables
            )
    for k, e in enumerate(c.definition.edges):
        if e.when is not None:
            _compile(c, pointer("edges", k, "when"), f"edge {k}", e.when, "expr", frozenset())


def _check_write(c: Checker, path: str, who: str, key: str) -> None:
    state = c.definition.state
    if key.startswith("__"):
        c.error(path, f"{who} writes {key!r}, but keys starting with '__' belong to the runtime")
    elif state is not None and key not in state:
        c.error(
            path, f"{who} writes {key!r}, which is not declared in state{did_you_mean(key, state)}"
        )


def _check_state(c: Checker) -> None:
    """Rules 14 (writes) and 15 (reducer/type)."""
    d = c.definition
    for i, n in enumerate(d.nodes):
        for key in sorted(c.writes(i)):
            _check_write(c, key_pointer(i, n.config, key), f"node {n.id!r}", key)
    for prefix, who, policies in [
        (("defaults",), "defaults.on_error", d.defaults),
        *((("nodes", i), f"the on_error of node {n.id!r}", n) for i, n in enumerate(d.nodes)),
    ]:
        for key in (policies.on_error.update or {}) if policies.on_error else {}:
            _check_write(c, pointer(*prefix, "on_error", "update", key), who, key)
        if d.state is not None and policies.cache is not None:
            for j, key in enumerate(policies.cache.key or []):
                if key not in d.state:
                    c.error(
                        pointer(*prefix, "cache", "key", j),
                        f"the cache key names {key!r}, which is not declared in state"
                        f"{did_you_mean(key, d.state)}",
                    )
    for key, spec in (d.state or {}).items():
        if key.startswith("__"):
            c.error(
                pointer("state", key),
                f"state key {key!r} is reserved: '__' keys belong to the runtime",
            )
        allowed = REDUCER_TYPES.get(spec.reducer)
        if allowed is None:
            continue
        types = {spec.type} if isinstance(spec.type, str) else set(spec.type or ())
        if types and (types - allowed - {"null"} or not types & allowed):
            c.error(
                pointer("state", key, "reducer"),
                f"state key {key!r} has type {'/'.join(sorted(types))}, which reducer "
                f"{spec.reducer!r} cannot combine; it needs type {' or '.join(sorted(allowed))}",
            )
        elif not spec.has_default and spec.reducer != "messages":
            c.warn(
                pointer("state", key),
                f"state key {key!r} uses reducer {spec.reducer!r} but has no default; declare one "
                "so the first write has something to combine with",
            )


def _schema_problem(schema: Any) -> tuple[str, str] | None:
    """The pointer (inside the schema) and message of its first error, or None when valid."""
    if isinstance(schema, Mapping) and "$schema" in schema:
        declared = schema["$schema"]
        if not isinstance(declared, str) or validators.validator_for(schema, default=None) is None:
            return "/$schema", f"unknown $schema {declared!r}"
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        return pointer(*exc.path), exc.message
    return None


def _check_schemas(c: Checker) -> None:
    """Rule 19: JSON Schemas in node configs and state ``items`` are themselves valid."""
    found: list[tuple[str, Any]] = []
    for i, n in enumerate(c.definition.nodes):
        found += [
            (pointer("nodes", i, "config", f), n.config[f]) for f in SCHEMA_FIELDS if f in n.config
        ]
    for key, spec in (c.definition.state or {}).items():
        if spec.items is not None:
            found.append((pointer("state", key, "items"), spec.items))
    for path, schema in found:
        if not isinstance(schema, Mapping | bool):
            continue  # the config model rejects non-objects; nothing more to say here
        problem = _schema_problem(schema)
        if problem is not None:
            c.error(path + problem[0], f"invalid JSON Schema: {problem[1]}")


def _check_policies(c: Checker) -> None:
    """Rule 20: retry, timeout, cache and on_error blocks, then settings."""
    d = c.definition
    _check_policy_block(c, ("defaults",), "defaults", None, d.defaults)
    for i, n in enumerate(d.nodes):
        _check_policy_block(c, ("nodes", i), f"node {n.id!r}", n.type, n)
    _check_settings(c)


def _check_policy_block(
    c: Checker, prefix: tuple[str | int, ...], who: str, node_type: str | None, pol: Policies
) -> None:
    if pol.retry is not None:
        if pol.retry.max_attempts < 1:
            c.error(
                pointer(*prefix, "retry", "max_attempts"),
                f"{who}: retry.max_attempts is {pol.retry.max_attempts}; it must be at least 1",
            )
        for j, code in enumerate(pol.retry.retry_on):
            if code not in ERROR_CODES:
                c.error(
                    pointer(*prefix, "retry", "retry_on", j), f"{who}: {code!r} is not E001-E007"
                )
    timeouts: dict[str, float | None] = {}
    if isinstance(pol.timeout, int | float):
        timeouts = {"": pol.timeout}
    if isinstance(pol.timeout, TimeoutSpec):
        timeouts = {"run": pol.timeout.run, "idle": pol.timeout.idle}
    for name, value in timeouts.items():
        if value is not None and value <= 0:
            path = pointer(*prefix, "timeout", *([name] if name else []))
            c.error(path, f"{who}: the timeout must be over 0 seconds, not {value}")
    if pol.cache is not None:
        if node_type == "human":
            c.error(pointer(*prefix, "cache"), f"{who} is a human node, which cannot be cached")
        if pol.cache.ttl is not None and pol.cache.ttl <= 0:
            c.error(pointer(*prefix, "cache", "ttl"), f"{who}: cache.ttl must be over 0 seconds")
    if pol.on_error is not None:
        _check_on_error(c, pointer(*prefix, "on_error"), who, pol.on_error)


def _check_on_error(c: Checker, where: str, who: str, on_error: OnErrorSpec) -> None:
    if on_error.to is not None and on_error.action != "route":
        c.error(where + "/to", f"{who}: on_error.to needs action 'route', not {on_error.action!r}")
    elif on_error.action == "route" and on_error.to is None:
        c.error(where + "/action", f"{who}: on_error action 'route' needs 'to', the node to go to")
    if on_error.to is not None and on_error.to not in c.index and on_error.to != END:
        hint = did_you_mean(on_error.to, c.index)
        c.error(
            where + "/to", f"{who}: on_error.to names {on_error.to!r}, which is not a node{hint}"
        )


def _check_settings(c: Checker) -> None:
    settings = c.definition.settings
    if settings.timeout_seconds is not None and settings.timeout_seconds <= 0:
        c.error("/settings/timeout_seconds", "settings.timeout_seconds must be over 0")
    for side in ("before", "after"):
        for j, name in enumerate(getattr(settings.breakpoints, side)):
            if name not in c.index:
                hint = did_you_mean(name, c.index)
                c.error(
                    pointer("settings", "breakpoints", side, j),
                    f"breakpoint {name!r} is not a node{hint}",
                )
    longest = c.topo.longest_path() if c.topo is not None else 0
    if settings.recursion_limit < longest:
        c.error(
            "/settings/recursion_limit",
            f"settings.recursion_limit is {settings.recursion_limit}, but the longest path through "
            f"the workflow has {longest} steps; raise it to at least {longest}",
        )
