from __future__ import annotations

from typing import Any

import pytest
from node_docs import chain, doc

from graph_runtime._integrations import StoreWorkflowRunner
from graph_runtime.errors import InputValidationError, WorkflowValidationError
from graph_runtime.models import EventType, TaskStatus
from graph_runtime.runtime import Runtime


def child(verdict: str = "state.order.total > 100 ? 'review' : 'ok'") -> dict[str, Any]:
    return doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "judge", "type": "transform", "config": {"set": {"verdict": verdict}}},
            {"id": "result", "type": "output", "config": {"select": {"verdict": "state.verdict"}}},
        ],
        chain("start", "judge", "result"),
        id="order-check",
    )


def parent(version: Any = "latest", workflow: str = "order-check") -> dict[str, Any]:
    return doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {
                "id": "check",
                "type": "subgraph",
                "config": {
                    "workflow": workflow,
                    "version": version,
                    "input": {"order": "state.order"},
                    "output": {"verdict": "result.verdict", "checks": "[result.verdict]"},
                },
            },
            {"id": "out", "type": "output", "config": {}},
        ],
        chain("start", "check", "out"),
        id="orders",
    )


async def test_child_runs_inside_the_node_and_maps_back(rt: Runtime) -> None:
    await rt.save_workflow(child())
    events = [e async for e in rt.stream(parent(), {"order": {"total": 250}}, run_id="p")]
    assert events[-1].data["result"] == {
        "order": {"total": 250},
        "verdict": "review",
        "checks": ["review"],
    }
    steps = await rt.steps("p")
    assert [s.step for s in steps] == [
        "start",
        "check/start",
        "check/judge",
        "check/result",
        "check",
        "out",
    ]
    assert steps[4].result == {
        "workflow": "order-check",
        "version": 1,
        "verdict": "review",
        "checks": ["review"],
    }
    assert (await rt.status("p")).progress == 1.0


async def test_latest_is_pinned_to_what_was_stored_at_submission(rt: Runtime) -> None:
    await rt.save_workflow(child())
    first = await rt.run(parent(), {"order": {"total": 1}}, run_id="old")
    assert first.result["verdict"] == "ok"
    await rt.save_workflow(child("'v2'"))
    assert (await rt.run(parent(), {"order": {"total": 1}})).result["verdict"] == "v2"
    # A fresh runner (a new process) pins the old run to the version of its time.
    assert await StoreWorkflowRunner(rt).pin("order-check", "latest", run_id="old") == 1
    assert (await rt.run(parent(version=1), {"order": {"total": 1}})).result["verdict"] == "ok"


async def test_unknown_workflows_and_cycles_are_refused_when_saved(rt: Runtime) -> None:
    with pytest.raises(WorkflowValidationError, match="'order-check' version latest is not"):
        await rt.save_workflow(parent())
    await rt.save_workflow(child())
    with pytest.raises(WorkflowValidationError, match="version 7 is not known"):
        await rt.save_workflow(parent(version=7))
    with pytest.raises(WorkflowValidationError, match="cycle: orders -> orders"):
        await rt.save_workflow(parent(workflow="orders"))
    a = parent(workflow="beta")
    a["id"] = "alpha"
    b = parent(workflow="order-check")
    b["id"] = "beta"
    await rt.save_workflow(b)
    await rt.save_workflow(a)
    b["nodes"][1]["config"]["workflow"] = "alpha"
    with pytest.raises(WorkflowValidationError, match="cycle: beta -> alpha -> beta"):
        await rt.save_workflow(b)


async def test_an_interrupt_in_the_child_pauses_and_resumes_the_run(rt: Runtime) -> None:
    ask = doc(
        [
            {
                "id": "ask",
                "type": "human",
                "config": {
                    "prompt": "OK to ship order {{ state.order.id }}?",
                    "actions": ["yes", "no"],
                    "output": "answer",
                },
            },
            {"id": "ok", "type": "output", "config": {"select": {"verdict": "'shipped'"}}},
            {"id": "stop", "type": "output", "config": {"select": {"verdict": "'held'"}}},
        ],
        [
            {"from": "__start__", "to": "ask"},
            {"from": "ask", "branch": "yes", "to": "ok"},
            {"from": "ask", "branch": "no", "to": "stop"},
        ],
        id="order-check",
    )
    await rt.save_workflow(ask)
    events = [e async for e in rt.stream(parent(), {"order": {"id": 9}}, run_id="i")]
    [question] = [e for e in events if e.type is EventType.INTERRUPT]
    assert question.data["value"]["prompt"] == "OK to ship order 9?"
    assert question.data["ns"] and question.data["ns"][0].startswith("check:")
    with pytest.raises(InputValidationError):
        await rt.resume("i", "maybe")
    await rt.resume("i", "no")
    response = await rt.wait("i", timeout=5)
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["verdict"] == "held"
    assert [s.step for s in await rt.steps("i")] == [
        "start",
        "check/ask",
        "check/stop",
        "check",
        "out",
    ]


async def test_input_keys_the_child_does_not_declare_are_refused(rt: Runtime) -> None:
    declared = child()
    declared["state"] = {"order": {"type": "object"}, "verdict": {"type": "string"}}
    await rt.save_workflow(declared)
    bad = parent()
    bad["nodes"][1]["config"]["input"] = {"ordr": "state.order"}
    with pytest.raises(WorkflowValidationError, match="no state key or input named 'ordr'"):
        await rt.save_workflow(bad)
    await rt.save_workflow(parent())
