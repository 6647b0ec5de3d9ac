"""The graph a document describes: edges with the sugar resolved, successors, longest path.

Shared by the validator (reachability, dead ends, cycles) and the compiler (what to wire).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from graph_runtime.schema import END, START, WorkflowDefinition, node_config
from nodes.registry import NodeRegistry, default_registry

__all__ = ["END", "START", "Edge", "Topology", "topology"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """One edge after the sugar is resolved."""

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    index: int | None
    """Position in the document's ``edges`` (None for edges the compiler implied)."""
    branch: str | None = None
    when: str | None = None
    else_: bool = False

    @property
    def conditional(self) -> bool:
        """True for branch, ``when`` and ``else`` edges."""
        return self.branch is not None or self.when is not None or self.else_

    @property
    def pointer(self) -> str:
        """Where the edge is in the document (``/edges/3``; ``/entry`` etc. for sugar)."""
        return f"/edges/{self.index}" if self.index is not None else ""


@dataclass(slots=True, kw_only=True)
class Topology:
    """Edges and successor sets of a workflow."""

    edges: list[Edge]
    node_ids: list[str]
    node_types: dict[str, str]
    map_targets: dict[str, str] = field(default_factory=dict)
    """map node id → target node id."""
    implicit_entry: str | None = None
    """The only ``input`` node, used as entry when the document names none."""
    successors: dict[str, set[str]] = field(default_factory=dict)

    def outgoing(self, node_id: str) -> list[Edge]:
        """Edges whose sources include ``node_id`` (joins included)."""
        return [e for e in self.edges if node_id in e.sources]

    def entry_nodes(self) -> set[str]:
        """Nodes run first."""
        return self.successors.get(START, set())

    def reachable(self, start: str = START) -> set[str]:
        """Nodes (and ``__end__``) reachable from ``start``."""
        seen: set[str] = set()
        todo = [start]
        while todo:
            n = todo.pop()
            for s in self.successors.get(n, ()):
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
        return seen

    def longest_path(self) -> int:
        """Node count of the longest acyclic path from the entry (progress denominator)."""
        best: dict[str, int] = {}

        def walk(node: str, on_path: frozenset[str]) -> int:
            if node == END or node in on_path:
                return 0
            if node in best and not on_path & {node}:
                return best[node]
            path = on_path | {node}
            length = 1 + max((walk(s, path) for s in self.successors.get(node, ())), default=0)
            best[node] = length
            return length

        starts = self.entry_nodes()
        if len(self.node_ids) > 200:  # bound the work on huge documents
            return len(self.node_ids)
        return max((walk(s, frozenset()) for s in starts), default=0)


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _explicit_edges(definition: WorkflowDefinition) -> list[Edge]:
    edges = []
    for i, e in enumerate(definition.edges):
        edges.append(
            Edge(
                sources=tuple(e.sources),
                targets=tuple(e.targets),
                index=i,
                branch=e.branch,
                when=e.when,
                else_=e.else_,
            )
        )
    if definition.entry:
        edges.append(Edge(sources=(START,), targets=(definition.entry,), index=None))
    for fin in _as_tuple(definition.finish):
        edges.append(Edge(sources=(fin,), targets=(END,), index=None))
    return edges


def topology(definition: WorkflowDefinition, registry: NodeRegistry | None = None) -> Topology:
    """Resolve a parsed document's edges: sugar, implicit entry and implicit finish."""
    registry = registry or default_registry
    edges = _explicit_edges(definition)
    types = {n.id: n.type for n in definition.nodes}
    topo = Topology(edges=edges, node_ids=[n.id for n in definition.nodes], node_types=types)
    for n in definition.nodes:
        if n.type == "map" and n.type in registry:
            target = getattr(node_config(n, registry), "node", None)
            if isinstance(target, str):
                topo.map_targets[n.id] = target
    has_start = any(START in e.sources for e in edges)
    if not has_start:
        inputs = [n.id for n in definition.nodes if n.type == "input"]
        if len(inputs) == 1:
            topo.implicit_entry = inputs[0]
            edges.append(Edge(sources=(START,), targets=(inputs[0],), index=None))
    with_out = {s for e in edges for s in e.sources} | set(topo.map_targets)
    for n in definition.nodes:
        if n.type == "output" and n.id not in with_out:
            edges.append(Edge(sources=(n.id,), targets=(END,), index=None))
    succ: dict[str, set[str]] = {}
    for e in edges:
        for s in e.sources:
            succ.setdefault(s, set()).update(e.targets)
    for m, t in topo.map_targets.items():
        succ.setdefault(m, set()).add(t)
    topo.successors = succ
    return topo


def strongly_connected(nodes: Iterable[str], successors: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative; only components with a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[set[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(successors.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(successors.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in successors.get(node, ()):
                    result.append(comp)
    return result
