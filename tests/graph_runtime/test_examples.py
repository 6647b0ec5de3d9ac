from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graph_runtime.models import TaskStatus
from graph_runtime.runtime import Runtime

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GREETING_REFUND = "Hi Ada, billing has your refund request (refund, priority)."
GREETING_BUG = "Hi there, engineering is looking into it (bug)."
GREETING_QUESTION = "Hi there, thanks for asking; the FAQ desk answers within a day."

# (file, input, final result, node ids of the step records in order)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "routing.json",
        {"ticket": "  I want a REFUND for order 7  ", "customer": "Ada"},
        {"queue": "billing", "tags": ["refund", "priority"], "reply": GREETING_REFUND},
        ["start", "normalise", "route", "refund", "refund_reply", "result"],
    ),
    (
        "routing.json",
        {"ticket": "The app crashes when I log in"},
        {"queue": "engineering", "tags": ["bug"], "reply": GREETING_BUG},
        ["start", "normalise", "route", "bug", "bug_reply", "result"],
    ),
    (
        "routing.json",
        {"ticket": "How do I export my data?"},
        {"queue": "general", "reply": GREETING_QUESTION},
        ["start", "normalise", "route", "question_reply", "answer"],
    ),
    (
        "map_loop.json",
        {"items": ["a", "b", "c"], "rounds": 2},
        {"lines": ["1. A", "2. B", "3. C"], "count": 2, "summary": "1. A | 2. B | 3. C"},
        [
            "start",
            "each",
            "shout",
            "shout",
            "shout",
            "again",
            "bump",
            "again",
            "bump",
            "again",
            "result",
        ],
    ),
    (
        # rounds over max_iterations: the loop stops at its cap through the exhausted branch.
        "map_loop.json",
        {"items": [], "rounds": 9},
        {"lines": [], "count": 5, "summary": ""},
        ["start", "each", "again", *["bump", "again"] * 5, "result"],
    ),
]


@pytest.fixture
async def rt(tmp_path: Path) -> Any:
    async with Runtime(tmp_path / "db.sqlite") as runtime:
        yield runtime


def test_every_example_is_covered() -> None:
    # Examples with AI and integration nodes need their services: tests/nodes and
    # tests/server cover them. This file covers every example made of core nodes only.
    ai_types = {"llm", "tool", "http", "subgraph", "human"}
    files = sorted(
        p.name
        for p in EXAMPLES.glob("*.json")
        if not {n["type"] for n in json.loads(p.read_text())["nodes"]} & ai_types
    )
    assert files == ["map_loop.json", "routing.json"]
    assert {case[0] for case in CASES} == set(files)
    for name, expected_id in [("routing.json", "routing"), ("map_loop.json", "map-loop")]:
        doc = json.loads((EXAMPLES / name).read_text())
        assert doc["id"] == expected_id
        assert doc["description"]


@pytest.mark.parametrize(("name", "data", "result", "nodes"), CASES)
async def test_example_runs_end_to_end(
    rt: Runtime, name: str, data: dict[str, Any], result: dict[str, Any], nodes: list[str]
) -> None:
    response = await rt.run(EXAMPLES / name, data, run_id="run-1")
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result == result
    assert response.progress == 1.0
    steps = await rt.steps("run-1")
    assert [s.step for s in steps] == nodes
    assert [s.seq for s in steps] == list(range(1, len(nodes) + 1))
    assert all(s.completed and s.status is TaskStatus.COMPLETED for s in steps)
    assert all(s.run_id == "run-1" and s.error_code is None for s in steps)


async def test_routing_records_the_branch_taken(rt: Runtime) -> None:
    await rt.run(EXAMPLES / "routing.json", {"ticket": "money back please"}, run_id="r")
    route = next(s for s in await rt.steps("r") if s.step == "route")
    assert route.node_type == "condition"
    assert route.result == {"branch": "refund"}
