"""Names a workflow refers to outside itself (WORKFLOW.md §2.3, rules 17 and 18).

Models, tools and credentials are checked against the server's registries, and subgraph
references against the workflow store, when the caller passes them; otherwise they are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from graph_runtime._validation_graph import Checker, did_you_mean
from graph_runtime.schema import WorkflowDefinition, pointer

__all__ = ["MAX_SUBGRAPH_DEPTH", "Resolver", "check_references", "check_subgraphs"]

logger = logging.getLogger(__name__)

#: How far subgraph references are followed when looking for a cycle.
MAX_SUBGRAPH_DEPTH = 16

Resolver = Callable[[str, int | str], WorkflowDefinition | None]
"""``(workflow_id, version or "latest") → definition``, or None when there is no such workflow."""


def _check_name(
    c: Checker, path: str, kind: str, name: Any, known: Collection[str] | None, where: str = ""
) -> None:
    if known is not None and isinstance(name, str) and name not in known:
        where = where or "known to the server"
        c.error(path, f"{kind} {name!r} is not {where}{did_you_mean(name, known)}")


def check_references(
    c: Checker,
    *,
    models: Collection[str] | None,
    tools: Collection[str] | None,
    credentials: Collection[str] | None,
) -> None:
    """Rule 18: model, tool and credential names resolve (where the server's lists are given)."""
    d = c.definition
    for j, name in enumerate(d.tools):
        _check_name(c, pointer("tools", j), "tool", name, tools)
    for alias, spec in d.models.items():
        _check_name(c, pointer("models", alias, "ref"), "model", spec.get("ref"), models)
    model_names = None if models is None else {*models, *d.models}
    # A document that lists its tools may use only those; otherwise the server's list applies.
    listed = set(d.tools) or None
    for i, n in enumerate(d.nodes):
        config, at = n.config, ("nodes", i, "config")
        _check_name(c, pointer(*at, "model"), "model", config.get("model"), model_names)
        refs: list[tuple[str, Any]] = [(pointer(*at, "tool"), config.get("tool"))]
        if isinstance(config.get("tools"), list):
            refs += [(pointer(*at, "tools", j), name) for j, name in enumerate(config["tools"])]
        for path, name in refs:
            if listed is not None:
                _check_name(c, path, "tool", name, listed, "listed in the workflow's 'tools'")
            else:
                _check_name(c, path, "tool", name, tools)
        cred = config.get("credential")
        _check_name(c, pointer(*at, "credential"), "credential", cred, credentials)


def _subgraph_refs(definition: WorkflowDefinition) -> list[tuple[int, str, int | str]]:
    refs = []
    for i, n in enumerate(definition.nodes):
        workflow, version = n.config.get("workflow"), n.config.get("version", "latest")
        if n.type == "subgraph" and isinstance(workflow, str) and isinstance(version, int | str):
            refs.append((i, workflow, version))
    return refs


def _resolve(resolve: Resolver, workflow: str, version: int | str) -> WorkflowDefinition | None:
    try:
        return resolve(workflow, version)
    except Exception:
        # The resolver is the caller's code (a store lookup); report, do not crash validation.
        logger.exception(
            "subgraph lookup failed", extra={"action": "validate", "workflow": workflow}
        )
        return None


def check_subgraphs(c: Checker, resolve: Resolver) -> None:
    """Rule 17: referenced workflows exist and do not refer back to this one."""
    root = c.definition.id
    for i, workflow, version in _subgraph_refs(c.definition):
        path = pointer("nodes", i, "config", "workflow")
        # A reference to itself is a cycle whatever the store holds under that id.
        child = None if workflow == root else _resolve(resolve, workflow, version)
        if workflow != root and child is None:
            c.error(path, f"workflow {workflow!r} version {version} is not known")
            continue
        cycle = (
            [root, root] if child is None else _find_cycle(resolve, root, child, [root, workflow])
        )
        if cycle:
            c.error(path, f"subgraph references form a cycle: {' -> '.join(cycle)}")
        if child is not None:
            _check_child_inputs(c, i, workflow, child)


def _check_child_inputs(c: Checker, i: int, workflow: str, child: WorkflowDefinition) -> None:
    """Rule 17: each ``input`` key is a declared state key or input property of the child."""
    mapping = c.definition.nodes[i].config.get("input")
    if child.state is None or not isinstance(mapping, dict):
        return  # an inferred child state takes any key
    known = set(child.state)
    for n in child.nodes:
        schema = n.config.get("schema") if n.type == "input" else None
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            known |= set(schema["properties"])
    for key in mapping:
        if key not in known:
            c.error(
                pointer("nodes", i, "config", "input", key),
                f"workflow {workflow!r} has no state key or input named {key!r}"
                f"{did_you_mean(key, known)}",
            )


def _find_cycle(
    resolve: Resolver, root: str, child: WorkflowDefinition, chain: list[str]
) -> list[str] | None:
    todo, seen = [(child, chain)], set()
    while todo:
        current, chain = todo.pop()
        for _, ref, version in _subgraph_refs(current):
            if ref == root:
                return [*chain, ref]
            if (ref, str(version)) in seen or len(chain) > MAX_SUBGRAPH_DEPTH:
                continue
            seen.add((ref, str(version)))
            nested = _resolve(resolve, ref, version)
            if nested is not None:
                todo.append((nested, [*chain, ref]))
    return None
