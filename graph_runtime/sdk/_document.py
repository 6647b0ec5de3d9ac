"""Plain functions over workflow documents (JSON dicts) that ``Workflow`` is built from.

Kept apart from the fluent class so that each piece can be read, and tested, on plain data.
"""

from __future__ import annotations

import copy
import keyword
from collections.abc import Mapping, Sequence
from typing import Any

from graph_runtime.errors import Problem, WorkflowValidationError
from graph_runtime.schema import WorkflowDefinition
from graph_runtime.validation import check_workflow, load_workflow
from nodes.registry import NodeRegistry

__all__ = [
    "MISSING",
    "NODE_FIELDS",
    "SECTION_ORDER",
    "config_key",
    "document_problems",
    "edge_links",
    "endpoint",
    "given",
    "ordered",
    "without_node",
]

#: Top-level keys in the order ``to_dict()`` writes them; other keys follow in their own order.
_SECTIONS = (
    "schema id name description settings defaults models tools state nodes edges entry finish"
)
SECTION_ORDER = tuple(_SECTIONS.split())
#: Node fields that are not ``config``, in the order ``node()`` writes them.
NODE_FIELDS = tuple(
    "name description retry timeout cache on_error interrupt defer ui metadata".split()
)


class _Missing:
    """Marks an argument that was not given (``None`` is a real value for a state default)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def config_key(key: str) -> str:
    """``as_`` → ``as``: Python keywords cannot be keyword arguments, so callers add ``_``."""
    if key.endswith("_") and keyword.iskeyword(key[:-1]):
        return key[:-1]
    return key


def endpoint(value: str | Sequence[str]) -> str | list[str]:
    """An edge's ``from``/``to``: a node id, or a list of them (join or fan-out)."""
    return value if isinstance(value, str) else list(value)


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """Copies of the values that are neither None nor ``MISSING``, in their order."""
    return {k: copy.deepcopy(v) for k, v in values.items() if v is not None and v is not MISSING}


def ordered(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with sections in ``SECTION_ORDER`` (then the rest) and empty sections left out."""
    out: dict[str, Any] = {}
    for key in (*SECTION_ORDER, *(k for k in document if k not in SECTION_ORDER)):
        value = document.get(key)
        if value is None or (isinstance(value, dict | list) and not value):
            continue
        out[key] = copy.deepcopy(value)
    return out


def edge_links(edge: Any, source: str, target: str | None = None) -> bool:
    """True when ``edge`` leaves ``source`` (and, when given, reaches ``target``)."""
    if not isinstance(edge, dict):
        return False
    sources, targets = edge.get("from"), edge.get("to")
    sources = sources if isinstance(sources, list) else [sources]
    targets = targets if isinstance(targets, list) else [targets]
    return source in sources and (target is None or target in targets)


def without_node(edges: Sequence[Any], node_id: str) -> list[Any]:
    """The edges with ``node_id`` taken out of every end; an edge left without an end goes."""
    kept: list[Any] = []
    for edge in edges:
        if not isinstance(edge, dict):
            kept.append(edge)  # not ours to judge: validate() reports it
            continue
        edge = copy.deepcopy(edge)
        for end in ("from", "to"):
            value = edge.get(end)
            if isinstance(value, list):
                rest = [v for v in value if v != node_id]
                edge[end] = rest[0] if len(rest) == 1 else rest
        if edge.get("from") not in (node_id, []) and edge.get("to") not in (node_id, []):
            kept.append(edge)
    return kept


def document_problems(
    document: Mapping[str, Any] | str | bytes,
    *,
    workflow_id: str | None = None,
    registry: NodeRegistry | None = None,
) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Parse and check a document; collect every problem, warnings included.

    Args:
        document: the workflow, as a mapping or as JSON text.
        workflow_id: the id to use when the document has none.
        registry: node types to check against (default: the built-in registry).

    Returns:
        The definition (None when the document has errors) and every problem found.
    """
    try:
        definition = load_workflow(document, workflow_id=workflow_id, registry=registry)
    except WorkflowValidationError as exc:
        return None, list(exc.problems)
    # A valid document can still carry warnings, which load_workflow raises only with errors.
    return definition, check_workflow(definition, registry=registry)
