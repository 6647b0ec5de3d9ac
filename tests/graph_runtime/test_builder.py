from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from graph_runtime.errors import WorkflowValidationError
from graph_runtime.sdk import Workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["routing", "map_loop"]


def example_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("name", NAMES)
def test_builder_code_produces_the_example_json(name: str) -> None:
    wf = example_module(name).build()
    assert wf.to_dict() == example_json(name)
    # Byte for byte too, so `python examples/<name>.py > examples/<name>.json` is a no-op.
    assert wf.to_json() + "\n" == (EXAMPLES / f"{name}.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_clean_and_round_trip(name: str, tmp_path: Path) -> None:
    doc = example_json(name)
    wf = Workflow.from_dict(doc)
    assert wf.validate() == []  # no errors and no warnings
    assert wf.to_dict() == doc
    assert list(wf.to_dict()) == list(doc)  # stable key order
    saved = wf.save(tmp_path / "copy.json")
    assert Workflow.load(saved).to_dict() == doc
    assert wf.build().id == doc["id"]


@pytest.mark.parametrize("name", NAMES)
def test_draw_returns_mermaid_with_every_node(name: str) -> None:
    mermaid = Workflow.from_dict(example_json(name)).draw()
    assert "graph TD" in mermaid
    for node in example_json(name)["nodes"]:
        assert node["id"] in mermaid


def test_node_options_map_to_config_and_common_fields() -> None:
    wf = (
        Workflow("opts", name="Options", description="d")
        .settings(recursion_limit=50, breakpoints={"before": ["tick"]})
        .defaults(retry={"max_attempts": 2})
        .state("items", type="array", default=[])
        .state("n", type="integer", reducer="add", default=0)
        .state("maybe", type=["string", "null"], default=None)
        .node("fan", "map", items="state.items", as_="thing", node="tick", name="Fan out")
        .node("tick", "transform", set={"n": "1"}, retry={"max_attempts": 3}, timeout=5, defer=True)
        .node("again", "loop", while_="state.n < 3", max_iterations=4)
        .node("nap", "wait", config={"seconds": 0}, metadata={"owner": "ops"})
        .edge("__start__", "fan")
        .edge("again", "tick", when="state.n > 1")
        .edge("again", ["nap"], otherwise=True)
    )
    doc = wf.to_dict()
    assert list(doc) == [
        "schema",
        "id",
        "name",
        "description",
        "settings",
        "defaults",
        "state",
        "nodes",
        "edges",
    ]
    assert doc["state"]["maybe"] == {"type": ["string", "null"], "default": None}
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert nodes["fan"] == {
        "id": "fan",
        "type": "map",
        "name": "Fan out",
        "config": {"items": "state.items", "as": "thing", "node": "tick"},
    }
    assert nodes["tick"]["config"] == {"set": {"n": "1"}}
    assert (nodes["tick"]["retry"], nodes["tick"]["timeout"], nodes["tick"]["defer"]) == (
        {"max_attempts": 3},
        5,
        True,
    )
    assert nodes["again"]["config"] == {"while": "state.n < 3", "max_iterations": 4}
    assert nodes["nap"] == {
        "id": "nap",
        "type": "wait",
        "config": {"seconds": 0},
        "metadata": {"owner": "ops"},
    }
    assert doc["edges"][1:] == [
        {"from": "again", "to": "tick", "when": "state.n > 1"},
        {"from": "again", "to": ["nap"], "else": True},
    ]
    assert json.loads(wf.to_json(indent=None)) == doc


def test_validate_reports_every_problem_with_a_pointer() -> None:
    wf = (
        Workflow("broken")
        .state("x", type="integer", default=0)
        .node("start", "input")
        .node(
            "route",
            "condition",
            branches=[{"name": "a", "when": "state.x > 1"}, {"name": "b", "when": "state.x >"}],
        )
        .node("oops", "transfrom", set={"x": "1"})
        .node("done", "output")
        .edge("__start__", "start")
        .edge("start", "route")
        .edge("route", "done", branch="a")
        .edge("route", "done", branch="b")
        .edge("route", "done", branch="default")
        .edge("done", "nowhere")
    )
    problems = wf.validate()  # never raises for document problems
    paths = {p.path for p in problems}
    assert "/nodes/2/type" in paths
    assert any("transform" in p.message for p in problems if p.path == "/nodes/2/type")
    with pytest.raises(WorkflowValidationError) as info:
        wf.build()
    assert {p.path for p in info.value.problems} == paths

    # With the type fixed, the graph and expression rules get to run.
    wf.update_node("oops", type="transform")
    paths = {p.path for p in wf.validate()}
    assert "/nodes/1/config/branches/1/when" in paths
    assert any(p.startswith("/edges/5") for p in paths)
    assert all(p.code.value == "E001" for p in wf.validate())


def test_validate_never_raises_on_a_broken_document() -> None:
    problems = Workflow.from_dict({"nodes": "not a list", "bogus": 1}).validate()
    assert {p.path for p in problems} >= {"/nodes", "/bogus"}


def test_editing_a_loaded_document() -> None:
    wf = Workflow.load(EXAMPLES / "routing.json")
    wf.remove_node("answer")
    assert all("answer" not in (e["from"], e["to"]) for e in wf.to_dict()["edges"])
    problems = wf.validate()
    assert any(p.path.startswith("/nodes/") and "question_reply" in p.message for p in problems)
    wf.edge("question_reply", "result").update_node("route", default="faq")
    wf.remove_edges("route", "question_reply").edge("route", "question_reply", branch="faq")
    assert wf.validate() == []
    assert wf.get_node("route")["config"]["default"] == "faq"
    with pytest.raises(KeyError):
        wf.get_node("answer")
