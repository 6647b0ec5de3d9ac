"""Graph rules of the workflow validator (WORKFLOW.md §2.3, rules 6-12, 15 and 16).

Split from ``validation.py`` to keep both modules short. Every rule reads one shared
``Checker`` and appends ``Problem``s to it; no rule stops the others.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from graph_runtime.errors import Problem
from graph_runtime.schema import END, START, EdgeSpec, WorkflowDefinition, pointer
from graph_runtime.topology import Topology, strongly_connected
from nodes.registry import NodeRegistry

__all__ = ["Checker", "check_graph", "did_you_mean", "key_pointer", "quoted"]

#: Branches a node may leave without an edge (loop: ``exhausted`` falls back to ``done``).
OPTIONAL_BRANCHES: dict[str, frozenset[str]] = {
    "loop": frozenset({"exhausted"}),
    "human": frozenset({"timeout"}),
}


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def quoted(names: Iterable[str], limit: int = 4) -> str:
    """``'a', 'b' and 'c'`` (at most ``limit`` names, then ``and N more``)."""
    items = [repr(n) for n in names]
    if len(items) > limit:
        items = [*items[:limit], f"{len(items) - limit} more"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def key_pointer(index: int, config: Mapping[str, Any], key: str) -> str:
    """Where in node ``index``'s config the state key ``key`` is written (best effort)."""
    base = ("nodes", index, "config")
    for name, value in config.items():
        if value == key:  # e.g. template's "output": "reply"
            return pointer(*base, name)
        if isinstance(value, Mapping) and key in value and name != "schema":
            return pointer(*base, name, key)  # e.g. transform's "set": {"reply": ...}
    schema = config.get("schema")
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(props, Mapping) and key in props:
        return pointer(*base, "schema", "properties", key)
    return pointer("nodes", index)


@dataclass(slots=True, kw_only=True)
class Checker:
    """What every rule needs: the document, parsed node configs, the topology, the findings."""

    definition: WorkflowDefinition
    registry: NodeRegistry
    configs: dict[int, BaseModel] = field(default_factory=dict)
    """Node index → parsed config (only nodes whose type is known and config is valid)."""
    index: dict[str, int] = field(default_factory=dict)
    """Node id → index of its first occurrence."""
    topo: Topology | None = None
    succ: dict[str, set[str]] = field(default_factory=dict)
    """``__start__`` and node id → successors (nodes or ``__end__``), dangling names resolved."""
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        """Record an error."""
        self.problems.append(Problem(path=path, message=message))

    def warn(self, path: str, message: str) -> None:
        """Record a warning."""
        self.problems.append(Problem(path=path, message=message, severity="warning"))

    def node_type(self, node_id: str) -> str:
        """The type of a node (``__start__`` for the start pseudo-node)."""
        return self.definition.nodes[self.index[node_id]].type if node_id in self.index else node_id

    def branches(self, node_id: str) -> list[str] | None:
        """The declared branches of a node, or None for a non-branching node."""
        i = self.index.get(node_id)
        if i is None or i not in self.configs:
            return None
        node = self.definition.nodes[i]
        return self.registry.get(node.type).branches(self.configs[i])

    def writes(self, i: int) -> set[str]:
        """The state keys node ``i`` writes (empty when its config did not parse)."""
        if i not in self.configs:
            return set()
        return set(self.registry.get(self.definition.nodes[i].type).writes(self.configs[i]))

    def map_targets(self) -> dict[str, str]:
        """Map node id → target id, for targets that are nodes."""
        if self.topo is None:
            return {}
        return {m: t for m, t in self.topo.map_targets.items() if t in self.index}


def _reach(successors: Mapping[str, Collection[str]], starts: Iterable[str]) -> set[str]:
    seen = set(starts)
    todo = list(seen)
    while todo:
        for nxt in successors.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _reverse(successors: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
    rev: dict[str, set[str]] = defaultdict(set)
    for src, targets in successors.items():
        for t in targets:
            rev[t].add(src)
    return rev


def _side_pointer(k: int, side: str, value: str | list[str], j: int) -> str:
    return pointer("edges", k, side) if isinstance(value, str) else pointer("edges", k, side, j)


def check_endpoints(c: Checker) -> None:
    """Rule 6: every edge endpoint (and ``entry``/``finish``) names a node."""
    ids = c.index
    for k, e in enumerate(c.definition.edges):
        for side, value, allowed in (("from", e.source, START), ("to", e.target, END)):
            names = [value] if isinstance(value, str) else value
            if not names:
                c.error(pointer("edges", k, side), f"edge {k} has an empty {side!r} list")
            verb = "comes from" if side == "from" else "goes to"
            for j, name in enumerate(names):
                path = _side_pointer(k, side, value, j)
                if name == allowed:
                    if side == "from" and len(names) > 1:
                        c.error(
                            path,
                            f"edge {k} joins '__start__' with other nodes; it can only start a run",
                        )
                elif name in (START, END):
                    c.error(path, f"edge {k} {verb} {name!r}, which cannot be used on that side")
                elif name not in ids:
                    hint = did_you_mean(name, ids)
                    c.error(path, f"edge {k} {verb} {name!r}, which is not a node{hint}")
    entry = c.definition.entry
    if entry is not None and entry not in ids:
        c.error("/entry", f"the entry {entry!r} is not a node{did_you_mean(entry, ids)}")
    finish = c.definition.finish
    for j, name in enumerate([finish] if isinstance(finish, str) else finish or []):
        if name not in ids:
            path = "/finish" if isinstance(finish, str) else pointer("finish", j)
            c.error(path, f"the finish node {name!r} is not a node{did_you_mean(name, ids)}")


def check_entry(c: Checker) -> bool:
    """Rule 7: the run has somewhere to start. Returns True when it has."""
    d = c.definition
    if d.entry is not None or any(START in e.sources for e in d.edges):
        return True
    inputs = [n.id for n in d.nodes if n.type == "input"]
    if len(inputs) == 1:
        return True
    if inputs:
        c.error(
            "/entry",
            f"the workflow has {len(inputs)} input nodes ({quoted(inputs)}) and no entry; "
            "set 'entry' or add an edge from '__start__' to say which one runs first",
        )
    else:
        c.error(
            "/entry",
            "the workflow has no entry: add an edge from '__start__', set 'entry', "
            "or add an input node",
        )
    return False


def _closed_cycles(c: Checker) -> set[str]:
    """Rule 11; returns the members of cycles that have no way out."""
    closed: set[str] = set()
    for comp in strongly_connected(list(c.index), c.succ):
        members = sorted(comp, key=lambda n: c.index.get(n, 0))
        path = pointer("nodes", c.index[members[0]])
        exits = any(s not in comp for n in comp for s in c.succ[n])
        what = (
            f"nodes {quoted(members)} form a cycle"
            if len(comp) > 1
            else f"node {members[0]!r} loops to itself"
        )
        if not exits:
            closed |= comp
            c.error(path, f"{what} with no edge leading out of it, so the run could never finish")
        elif not any(c.node_type(n) == "loop" for n in comp):
            c.warn(
                path,
                f"{what} without a loop node, so only settings.recursion_limit bounds it; "
                "consider a loop node with max_iterations",
            )
    return closed


def _clean_successors(c: Checker, topo: Topology) -> dict[str, set[str]]:
    # A name that is not a node is reported as dangling already. The graph rules read it as the
    # node it most likely meant (or as the start/end), so one typo does not also make every node
    # around it unreachable or unfinished.
    def fix(name: str, fallback: str) -> str:
        if name in c.index or name in (START, END):
            return name if name in c.index or name == fallback else fallback
        close = difflib.get_close_matches(name, list(c.index), n=1, cutoff=0.6)
        return close[0] if close else fallback

    succ: dict[str, set[str]] = {n: set() for n in [START, *c.index]}
    pairs = [(s, t) for e in topo.edges for s in e.sources for t in e.targets]
    for s, t in [*pairs, *topo.map_targets.items()]:
        source, target = fix(s, START), fix(t, END)
        succ[source].add(END if target == source and s in topo.map_targets else target)
    return succ


def check_paths(c: Checker, has_entry: bool) -> None:
    """Rules 8-11: reachability, dead ends, a way to finish, cycles."""
    d = c.definition
    succ = {k: set(v) for k, v in c.succ.items()}
    # An on_error route is a real way into its target, so that target is not unreachable.
    routes = [p.on_error.to for p in (d.defaults, *d.nodes) if p.on_error and p.on_error.to]
    for n in d.nodes:
        succ.setdefault(n.id, set()).update(routes)
    reachable = _reach(succ, [START]) if has_entry else set(c.index)
    if not c.succ[START] - {END}:
        reachable = set(c.index)  # a dangling entry is reported already; do not cascade
    for node_id, i in c.index.items():
        if node_id not in reachable:
            c.error(
                pointer("nodes", i),
                f"node {node_id!r} is unreachable: no path leads to it from the entry",
            )
    dead = {n for n in c.index if not c.succ[n]}
    for node_id in sorted(dead, key=c.index.__getitem__):
        # Branching nodes without edges get one problem per branch from rule 12 instead.
        if c.node_type(node_id) != "output" and c.branches(node_id) is None:
            c.error(
                pointer("nodes", c.index[node_id]),
                f"node {node_id!r} is a dead end: it has no outgoing edge and is not an output",
            )
    closed = _closed_cycles(c)
    finishing = _reach(_reverse(c.succ), [END])
    traps = dead | closed
    for node_id, i in c.index.items():
        if node_id in finishing or node_id in traps or node_id not in reachable:
            continue
        stops = sorted(_reach(c.succ, [node_id]) & traps, key=c.index.__getitem__)
        c.error(
            pointer("nodes", i),
            f"node {node_id!r} can never finish: every path from it ends at "
            f"{quoted(stops or ['a cycle'])}",
        )


def _branch_pointer(c: Checker, node_id: str, name: str) -> str:
    i = c.index[node_id]
    config = c.definition.nodes[i].config
    for j, b in enumerate(config.get("branches") or []):
        if isinstance(b, Mapping) and b.get("name") == name:
            return pointer("nodes", i, "config", "branches", j)
    actions = config.get("actions")
    if isinstance(actions, list) and name in actions:
        return pointer("nodes", i, "config", "actions", actions.index(name))
    if "branches" in config and config.get("default", "default") == name:
        return pointer("nodes", i, "config", "default")
    return pointer("nodes", i)


def _check_branching(
    c: Checker, node_id: str, declared: list[str], out: list[tuple[int, EdgeSpec]]
) -> None:
    kind = c.node_type(node_id)
    covered = set()
    for k, e in out:
        if e.branch is not None:
            covered.add(e.branch)
            if e.branch not in declared:
                hint = did_you_mean(e.branch, declared) or f" (its branches: {', '.join(declared)})"
                c.error(
                    pointer("edges", k, "branch"),
                    f"edge {k} names branch {e.branch!r}, which {kind} {node_id!r} "
                    f"does not have{hint}",
                )
        elif e.when is not None or e.else_:
            c.error(
                pointer("edges", k, "when" if e.when is not None else "else"),
                f"edge {k} leaves {kind} {node_id!r}, which routes by 'branch', not 'when'/'else'",
            )
        else:
            c.error(
                pointer("edges", k),
                f"edge {k} leaves {kind} {node_id!r} without a 'branch'; "
                f"name one of {', '.join(declared)}",
            )
    optional = OPTIONAL_BRANCHES.get(kind, frozenset())
    for name in declared:
        if name not in covered and name not in optional:
            c.error(
                _branch_pointer(c, node_id, name),
                f"branch {name!r} of {kind} {node_id!r} has no edge",
            )


def _check_router(c: Checker, node_id: str, out: list[tuple[int, EdgeSpec]]) -> None:
    plain = [k for k, e in out if not e.conditional]
    whens = [k for k, e in out if e.when is not None and e.branch is None]
    elses = [k for k, e in out if e.else_ and e.when is None and e.branch is None]
    for k, e in out:
        if e.branch is not None:
            c.error(
                pointer("edges", k, "branch"),
                f"edge {k} names branch {e.branch!r}, but {node_id!r} is a {c.node_type(node_id)} "
                "node, which has no branches",
            )
    if plain and (whens or elses):
        first = min(whens + elses)
        c.error(
            pointer("edges", first),
            f"node {node_id!r} has both plain and conditional outgoing edges (edges "
            f"{', '.join(map(str, sorted(plain + whens + elses)))}); "
            "make them all plain or all 'when'/'else'",
        )
    if whens and not elses:
        c.error(
            pointer("edges", whens[0]),
            f"the 'when' edges out of {node_id!r} have no 'else' edge; add one with \"else\": true",
        )
    for k in elses[1:]:
        c.error(pointer("edges", k, "else"), f"node {node_id!r} has more than one 'else' edge")


def check_branches(c: Checker) -> None:
    """Rule 12: branch edges match the declared branches; routers have one ``else``."""
    out: dict[str, list[tuple[int, EdgeSpec]]] = defaultdict(list)
    for k, e in enumerate(c.definition.edges):
        if e.branch is not None and (e.when is not None or e.else_):
            c.error(
                pointer("edges", k, "branch"),
                f"edge {k} has both 'branch' and 'when'/'else'; use one",
            )
        if e.else_ and e.when is not None:
            c.error(pointer("edges", k, "else"), f"edge {k} has both 'when' and 'else'; use one")
        if e.conditional and len(e.sources) > 1:  # an empty list is reported as dangling
            c.error(pointer("edges", k, "from"), f"conditional edge {k} must have one 'from' node")
            continue
        for s in dict.fromkeys(e.sources):
            out[s].append((k, e))
    for node_id in c.index:
        declared = c.branches(node_id)
        if declared is not None:
            _check_branching(c, node_id, declared, out.get(node_id, []))
        elif node_id in out:
            _check_router(c, node_id, out[node_id])
    if START in out:
        _check_router(c, START, out[START])


def check_maps(c: Checker) -> None:
    """Rule 16 (maps): the target is a node and is reached only through its map."""
    runs: dict[str, str] = {}
    for i, n in enumerate(c.definition.nodes):
        if n.type != "map" or i not in c.configs:
            continue
        target = getattr(c.configs[i], "node", None)
        if not isinstance(target, str):
            continue
        if target == n.id:
            c.error(pointer("nodes", i, "config", "node"), f"map {n.id!r} cannot run itself")
        elif target not in c.index:
            hint = did_you_mean(target, c.index)
            c.error(
                pointer("nodes", i, "config", "node"),
                f"map {n.id!r} runs {target!r}, which is not a node{hint}",
            )
        else:
            runs.setdefault(target, n.id)
    for k, e in enumerate(c.definition.edges):
        for j, t in enumerate(e.targets):
            if t in runs:
                c.error(
                    _side_pointer(k, "to", e.target, j),
                    f"edge {k} goes to {t!r}, which map {runs[t]!r} runs once per item; "
                    "a map's target cannot also be reached by an edge",
                )


@dataclass(slots=True)
class _BranchPoint:
    """A node with conditional edges: what each alternative runs, and what ran before it."""

    alternatives: list[tuple[str, set[str]]]
    downstream: set[str]
    ancestors: set[str]


def check_joins(c: Checker) -> None:
    """Rule 16 (joins): warn when a branch decides whether some, but not all, sources run."""
    alternatives: dict[str, list[tuple[str, set[str]]]] = defaultdict(list)
    for k, e in enumerate(c.definition.edges):
        if e.conditional and len(e.sources) == 1:
            label = f"branch {e.branch!r}" if e.branch is not None else f"edge {k}"
            alternatives[e.sources[0]].append((label, _reach(c.succ, e.targets)))
    joins = [(k, e) for k, e in enumerate(c.definition.edges) if len(e.sources) > 1]
    if not joins or not alternatives:
        return
    rev = _reverse(c.succ)
    points = {
        b: _BranchPoint(alts, set().union(*(runs for _, runs in alts)), _reach(rev, [b]))
        for b, alts in alternatives.items()
    }
    for k, e in joins:
        sources = {s for s in e.sources if s in c.index}
        if e.conditional or len(sources) < 2:
            continue
        found = _skipped_source(sources, points)
        if found is not None:
            label, b, skipped = found
            c.warn(
                pointer("edges", k, "from"),
                f"the join in edge {k} waits for {quoted(sorted(sources))}, but {label} of {b!r} "
                f"skips {skipped!r}, so it may never fire; use plain edges into a node with "
                '"defer": true instead',
            )


def _skipped_source(
    sources: set[str], points: Mapping[str, _BranchPoint]
) -> tuple[str, str, str] | None:
    """(branch label, branch point, source) for a branch that skips a source another still runs."""
    for b, point in points.items():
        downstream = point.downstream & sources
        # Sources that ran before the branch point have already reached the join's barrier.
        decided = downstream - point.ancestors
        if not decided:
            continue
        for label, runs in point.alternatives:
            skipped = decided - runs
            still_running = (sources - downstream) | (sources & runs)
            if skipped and still_running:
                return label, b, sorted(skipped)[0]
    return None


def check_parallel_writes(c: Checker, reducer: Callable[[str], str | None]) -> None:
    """Rule 15 (supersteps): two nodes of one step must not write one ``replace`` key."""
    groups: list[list[str]] = []
    plain: dict[str, list[str]] = defaultdict(list)
    for e in c.definition.edges:
        targets = [t for t in e.targets if t in c.index]
        if not e.conditional and len(e.sources) == 1:
            plain[e.sources[0]] += targets
        elif e.conditional:
            groups.append(targets)
    reported: set[tuple[str, str]] = set()
    for group in [*groups, *plain.values()]:
        writer: dict[str, str] = {}
        for node_id in dict.fromkeys(group):
            i = c.index[node_id]
            for key in sorted(c.writes(i)):
                if reducer(key) != "replace":
                    continue
                other = writer.setdefault(key, node_id)
                if other != node_id and (node_id, key) not in reported:
                    reported.add((node_id, key))
                    c.error(
                        key_pointer(i, c.definition.nodes[i].config, key),
                        f"nodes {other!r} and {node_id!r} can run in the same step and both write "
                        f"{key!r}, whose reducer is 'replace'; give {key!r} a reducer such as "
                        "'append', or run them one after the other",
                    )
    for m, t in c.map_targets().items():
        i = c.index[t]
        for key in sorted(k for k in c.writes(i) if reducer(k) == "replace"):
            c.error(
                key_pointer(i, c.definition.nodes[i].config, key),
                f"map {m!r} runs {t!r} once per item in the same step, and {t!r} writes {key!r}, "
                f"whose reducer is 'replace'; give {key!r} a reducer such as 'append'",
            )


def check_graph(c: Checker, reducer: Callable[[str], str | None]) -> None:
    """Run every graph rule."""
    check_endpoints(c)
    has_entry = check_entry(c)
    if c.topo is not None:
        c.succ = _clean_successors(c, c.topo)
        check_paths(c, has_entry)
    check_branches(c)
    check_maps(c)
    if c.topo is not None:
        check_joins(c)
    check_parallel_writes(c, reducer)
