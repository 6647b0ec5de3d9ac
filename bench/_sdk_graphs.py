"""The bench_sdk graphs, twice: as LangGraph modules for ``langgraph dev`` and as workflows.

``short``: start -> a -> b -> c -> out, each step ``count + 1`` (five supersteps).
``loop``: start -> step, looping back while ``count < limit`` (``limit`` from the input).

This module is imported by the reference server (``langgraph.json`` points at ``short`` and
``loop`` here), so it needs nothing but langgraph.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    count: int
    limit: int


async def _passthrough(state: State) -> State:
    return {}


async def _step(state: State) -> State:
    return {"count": state.get("count", 0) + 1}


def _short() -> Any:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(State)
    g.add_node("start", _passthrough)
    for name in ("a", "b", "c"):
        g.add_node(name, _step)
    g.add_node("out", _passthrough)
    g.add_edge(START, "start")
    g.add_edge("start", "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", "out")
    g.add_edge("out", END)
    return g.compile()


def _again(state: State) -> str:
    return "step" if state.get("count", 0) < state.get("limit", 0) else END


def _loop() -> Any:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(State)
    g.add_node("start", _passthrough)
    g.add_node("step", _step)
    g.add_edge(START, "start")
    g.add_edge("start", "step")
    g.add_conditional_edges("step", _again)
    return g.compile()


short = _short()
loop = _loop()

SCHEMA = "graph-runtime/workflow/v1"

#: The same two graphs as graph-runtime workflow documents.
WORKFLOWS: list[dict[str, Any]] = [
    {
        "schema": SCHEMA,
        "id": "short",
        "state": {"count": {"type": "integer", "default": 0}},
        "nodes": [
            {"id": "start", "type": "input", "config": {}},
            *(
                {"id": x, "type": "transform", "config": {"set": {"count": "state.count + 1"}}}
                for x in "abc"
            ),
            {"id": "out", "type": "output", "config": {"select": {"count": "state.count"}}},
        ],
        "edges": [
            {"from": "start", "to": "a"},
            {"from": "a", "to": "b"},
            {"from": "b", "to": "c"},
            {"from": "c", "to": "out"},
        ],
    },
    {
        "schema": SCHEMA,
        "id": "loop",
        "settings": {"recursion_limit": 5000},
        "state": {
            "count": {"type": "integer", "default": 0},
            "limit": {"type": "integer", "default": 0},
        },
        "nodes": [
            {"id": "start", "type": "input", "config": {}},
            {"id": "step", "type": "transform", "config": {"set": {"count": "state.count + 1"}}},
            {"id": "out", "type": "output", "config": {"select": {"count": "state.count"}}},
        ],
        "edges": [
            {"from": "start", "to": "step"},
            {"from": "step", "to": "step", "when": "state.count < state.limit"},
            {"from": "step", "to": "out", "else": True},
        ],
    },
]
