"""Workflows for the Agent Protocol tests: a human approval, a slow loop, a failing node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "APPROVAL",
    "BOOM",
    "CHAT",
    "JUDGE",
    "PARENT",
    "TICKER",
    "ticker",
    "write_workflows",
]

SCHEMA = "graph-runtime/workflow/v1"

# start -> polish -> approve (human: approve | edit | reject) -> compose -> sent
#                                                     reject -> dropped
APPROVAL: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "approval",
    "name": "Reply approval",
    "description": "Polish a draft, ask a person, then send or drop it.",
    "state": {
        "draft": {"type": "string", "default": ""},
        "decision": {"type": "object", "default": {}},
        "reply": {"type": "string", "default": ""},
        "trail": {"type": "array", "reducer": "append", "default": []},
    },
    "nodes": [
        {
            "id": "start",
            "type": "input",
            "config": {
                "schema": {
                    "type": "object",
                    "required": ["draft"],
                    "properties": {"draft": {"type": "string"}},
                }
            },
        },
        {
            "id": "polish",
            "type": "transform",
            "config": {"set": {"draft": "state.draft + '!'", "trail": "['polish']"}},
        },
        {
            "id": "approve",
            "type": "human",
            "config": {
                "prompt": "Send this reply?\n{{ state.draft }}",
                "actions": ["approve", "edit", "reject"],
                "response_schema": {
                    "type": "object",
                    "required": ["action"],
                    "properties": {
                        "action": {"enum": ["approve", "edit", "reject"]},
                        "text": {"type": "string"},
                    },
                },
                "output": "decision",
            },
        },
        {
            "id": "compose",
            "type": "transform",
            "config": {
                "set": {
                    "reply": "state.decision.action == 'edit' ? state.decision.text : state.draft",
                    "trail": "['compose']",
                }
            },
        },
        {"id": "sent", "type": "output", "config": {"select": {"reply": "state.reply"}}},
        {"id": "dropped", "type": "output", "config": {"select": {"why": "state.decision"}}},
    ],
    "edges": [
        {"from": "start", "to": "polish"},
        {"from": "polish", "to": "approve"},
        {"from": "approve", "branch": "approve", "to": "compose"},
        {"from": "approve", "branch": "edit", "to": "compose"},
        {"from": "approve", "branch": "reject", "to": "dropped"},
        {"from": "compose", "to": "sent"},
    ],
}


def ticker(workflow_id: str, ticks: int, seconds: float) -> dict[str, Any]:
    """start -> (nap, tick) x ticks -> out: a run that takes ``ticks * seconds``."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "input", "config": {}}]
    edges: list[dict[str, Any]] = []
    last = "start"
    for i in range(ticks):
        nap, tick = f"nap{i}", f"tick{i}"
        nodes.append({"id": nap, "type": "wait", "config": {"seconds": str(seconds)}})
        nodes.append({"id": tick, "type": "transform", "config": {"set": {"ticks": f"['{i}']"}}})
        edges += [{"from": last, "to": nap}, {"from": nap, "to": tick}]
        last = tick
    nodes.append({"id": "out", "type": "output", "config": {"select": {"ticks": "state.ticks"}}})
    edges.append({"from": last, "to": "out"})
    return {
        "schema": SCHEMA,
        "id": workflow_id,
        "state": {"ticks": {"type": "array", "reducer": "append", "default": []}},
        "nodes": nodes,
        "edges": edges,
    }


#: Ten ticks of 0.1 s: long enough to join, drop and rejoin its stream.
TICKER = ticker("ticker", 10, 0.1)

# start -> boom -> out: a transform whose expression fails at run time (E007).
BOOM: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "boom",
    "state": {"n": {"type": "integer", "default": 0}},
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "boom", "type": "transform", "config": {"set": {"n": "1 / state.n"}}},
        {"id": "out", "type": "output", "config": {"select": {"n": "state.n"}}},
    ],
    "edges": [{"from": "start", "to": "boom"}, {"from": "boom", "to": "out"}],
}


# start -> ask (a scripted chat model that streams its tokens) -> out.
CHAT: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "chat",
    "models": {"scripted": {"provider": "fake", "responses": ["hello there friend"]}},
    "state": {
        "messages": {"type": "messages", "reducer": "messages"},
        "answer": {"type": "string", "default": ""},
    },
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {
            "id": "ask",
            "type": "llm",
            "config": {"model": "scripted", "prompt": "Say hello", "output": "answer"},
        },
        {"id": "out", "type": "output", "config": {"select": {"answer": "state.answer"}}},
    ],
    "edges": [{"from": "start", "to": "ask"}, {"from": "ask", "to": "out"}],
}


# A parent whose `check` node runs the stored child workflow `judge` (a LangGraph subgraph).
JUDGE: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "judge",
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "weigh", "type": "transform", "config": {"set": {"verdict": "'ok'"}}},
        {"id": "result", "type": "output", "config": {"select": {"verdict": "state.verdict"}}},
    ],
    "edges": [{"from": "start", "to": "weigh"}, {"from": "weigh", "to": "result"}],
}
PARENT: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "parent",
    "state": {"verdict": {"type": "string", "default": ""}},
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {
            "id": "check",
            "type": "subgraph",
            "config": {"workflow": "judge", "output": {"verdict": "result.verdict"}},
        },
        {"id": "out", "type": "output", "config": {"select": {"verdict": "state.verdict"}}},
    ],
    "edges": [{"from": "start", "to": "check"}, {"from": "check", "to": "out"}],
}


def write_workflows(folder: Path, *workflows: dict[str, Any]) -> Path:
    """Write ``workflows`` as ``<id>.json`` files (the server loads the folder at start)."""
    folder.mkdir(parents=True, exist_ok=True)
    for workflow in workflows or (APPROVAL, TICKER, BOOM, CHAT, JUDGE, PARENT):
        (folder / f"{workflow['id']}.json").write_text(json.dumps(workflow))
    return folder
