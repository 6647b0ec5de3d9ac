"""Workflow documents the HTTP tests share (server and client tests)."""

from __future__ import annotations

from typing import Any

__all__ = ["DRIP", "SCHEMA", "SIX", "SLOW", "chain"]

SCHEMA = "graph-runtime/workflow/v1"

# Six supersteps: start, a, b, c, d, out; each transform appends its name.
SIX: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "six",
    "state": {
        "trail": {"type": "array", "reducer": "append", "default": []},
        "n": {"type": "integer", "default": 0},
    },
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        *(
            {
                "id": x,
                "type": "transform",
                "config": {"set": {"trail": f"['{x}']", "n": "state.n + 1"}},
            }
            for x in "abcd"
        ),
        {
            "id": "out",
            "type": "output",
            "config": {"select": {"trail": "state.trail", "n": "state.n"}},
        },
    ],
    "edges": [
        {"from": "start", "to": "a"},
        {"from": "a", "to": "b"},
        {"from": "b", "to": "c"},
        {"from": "c", "to": "d"},
        {"from": "d", "to": "out"},
    ],
}

# start -> nap (input.seconds) -> out: a run that sits in a `wait` node.
SLOW: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "slow",
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "nap", "type": "wait", "config": {"seconds": "input.seconds"}},
        {"id": "out", "type": "output", "config": {"select": {"tag": "input.tag"}}},
    ],
    "edges": [{"from": "start", "to": "nap"}, {"from": "nap", "to": "out"}],
}


def chain(
    workflow_id: str, links: int, *, seconds: float = 0.0, copy: str | None = None
) -> dict[str, Any]:
    """start -> (wait, transform) x links -> out: one step event per node, spread in time.

    ``seconds`` is each wait; ``copy`` names an input key every transform copies into its
    step result (big inputs make big events).
    """
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "input", "config": {}}]
    edges: list[dict[str, str]] = []
    last = "start"
    for i in range(links):
        sets = {"count": "state.count + 1"}
        if copy is not None:
            sets["blob"] = f"input.{copy}"
        nodes.append({"id": f"w{i}", "type": "wait", "config": {"seconds": seconds}})
        nodes.append({"id": f"t{i}", "type": "transform", "config": {"set": sets}})
        edges += [{"from": last, "to": f"w{i}"}, {"from": f"w{i}", "to": f"t{i}"}]
        last = f"t{i}"
    nodes.append({"id": "out", "type": "output", "config": {"select": {"count": "state.count"}}})
    edges.append({"from": last, "to": "out"})
    state: dict[str, Any] = {"count": {"type": "integer", "default": 0}}
    if copy is not None:
        state["blob"] = {"type": "string", "default": ""}
    return {"schema": SCHEMA, "id": workflow_id, "state": state, "nodes": nodes, "edges": edges}


# Three links of 0.15 s: long enough to disconnect, reconnect or restart in the middle.
DRIP = chain("drip", 3, seconds=0.15)


def timed_six(seconds: float) -> dict[str, Any]:
    """SIX's six supersteps, each of a..d next to a ``wait`` so the superstep lasts ``seconds``.

    Same result as SIX; slow enough for a pause sent over HTTP to land in any superstep.
    """
    nodes = [*SIX["nodes"]]
    edges = [*SIX["edges"]]
    for before, x, after in zip(
        ["start", "a", "b", "c"], "abcd", ["b", "c", "d", "out"], strict=True
    ):
        nodes.append({"id": f"w{x}", "type": "wait", "config": {"seconds": seconds}})
        edges += [{"from": before, "to": f"w{x}"}, {"from": f"w{x}", "to": after}]
    return {**SIX, "id": "timed-six", "nodes": nodes, "edges": edges}


def counter(workflow_id: str, steps: int) -> dict[str, Any]:
    """n0 -> n1 -> ... : each of ``steps`` transforms adds 1 to ``count`` (durability sync)."""
    return {
        "schema": SCHEMA,
        "id": workflow_id,
        "settings": {"durability": "sync"},
        "state": {"count": {"type": "integer", "default": 0}},
        "nodes": [
            {"id": f"n{i}", "type": "transform", "config": {"set": {"count": "state.count + 1"}}}
            for i in range(steps)
        ],
        "edges": [
            *(
                {"from": "__start__" if i == 0 else f"n{i - 1}", "to": f"n{i}"}
                for i in range(steps)
            ),
            {"from": f"n{steps - 1}", "to": "__end__"},
        ],
    }
