from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool
from node_docs import chain, doc, runtime

from graph_runtime.errors import ConflictError, WorkflowValidationError
from graph_runtime.models import ErrorCode, TaskStatus
from nodes._tools import ToolRegistry, api_name
from nodes.tool import Config

START = {"id": "start", "type": "input", "config": {}}
OUT = {"id": "out", "type": "output", "config": {}}


@tool
def list_recent(ticket: str, limit: int) -> list[dict[str, Any]]:
    """Recent orders of the customer behind a ticket."""
    return [{"id": i, "ticket": ticket} for i in range(limit)]


def explode(reason: str) -> str:
    """Fails on purpose."""
    raise RuntimeError(reason)


def tool_node(**config: Any) -> dict[str, Any]:
    return {"id": "call", "type": "tool", "config": config}


async def test_args_are_cel_and_output_lands_in_state(tmp_path: Path) -> None:
    node = tool_node(
        tool="orders.list_recent", args={"ticket": "state.ticket", "limit": "2"}, output="orders"
    )
    wf = doc([START, node, OUT], chain("start", "call", "out"))
    async with runtime(tmp_path, tools={"orders.list_recent": list_recent}) as rt:
        response = await rt.run(wf, {"ticket": "T-1"}, run_id="t")
        step = (await rt.steps("t"))[1]
    assert response.result["orders"] == [{"id": 0, "ticket": "T-1"}, {"id": 1, "ticket": "T-1"}]
    assert step.step == "call" and step.result["tool"] == "orders.list_recent"


async def test_a_failing_tool_is_e003_and_retried(tmp_path: Path) -> None:
    node = tool_node(tool="explode", args={"reason": "'boom'"})
    node["retry"] = {"max_attempts": 2, "initial_interval": 0.01, "jitter": False}
    wf = doc([START, node, OUT], chain("start", "call", "out"))
    async with runtime(tmp_path, tools=[explode]) as rt:
        response = await rt.run(wf, {}, run_id="f")
        steps = [s for s in await rt.steps("f") if s.step == "call"]
    assert response.status is TaskStatus.FAILED
    assert [s.error_code for s in steps] == [ErrorCode.EXECUTION_ERROR, ErrorCode.RETRY_EXHAUSTED]
    assert "boom" in (steps[0].error_message or "")


async def test_unknown_tool_is_refused_at_save(tmp_path: Path) -> None:
    wf = doc([START, tool_node(tool="nope"), OUT], chain("start", "call", "out"))
    async with runtime(tmp_path, tools=[explode]) as rt:
        with pytest.raises(WorkflowValidationError) as info:
            await rt.save_workflow(wf)
    assert info.value.problems[0].path == "/nodes/1/config/tool"


async def test_calls_mode_without_pending_calls_does_nothing(tmp_path: Path) -> None:
    wf = doc(
        [tool_node(calls="last_message"), OUT],
        [{"from": "__start__", "to": "call"}, *chain("call", "out")],
        state={"messages": {"type": "messages", "reducer": "messages"}},
    )
    async with runtime(tmp_path) as rt:
        response = await rt.run(wf, {"messages": [{"type": "human", "content": "hi"}]})
    assert response.status is TaskStatus.COMPLETED
    assert [m["type"] for m in response.result["messages"]] == ["human"]


def test_config_needs_one_mode() -> None:
    for bad in (
        {},
        {"tool": "a", "calls": "last_message"},
        {"calls": "last_message", "args": {"a": "1"}},
    ):
        with pytest.raises(ValueError):
            Config.model_validate(bad)


def test_registry_names_and_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ToolRegistry([list_recent])
    with pytest.raises(ConflictError):
        registry.register(explode, name="list_recent")
    registry.register(explode, name="ops.explode")
    assert registry.names() == ["list_recent", "ops.explode"]
    assert api_name("ops.explode") == "ops_explode"
    assert set(registry.select(["ops.explode"])) == {"ops.explode", "ops_explode"}
    assert registry.specs(["ops.explode"])[0]["function"]["name"] == "ops_explode"

    class EntryPoint:
        def __init__(self, name: str, value: Any) -> None:
            self.name, self.value = name, value

        def load(self) -> Any:
            if isinstance(self.value, Exception):
                raise self.value
            return self.value

    points = [
        EntryPoint("orders", [list_recent, explode]),
        EntryPoint("single", explode),
        EntryPoint("broken", ImportError("missing dependency")),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points)
    loaded = ToolRegistry.from_entry_points()
    assert loaded.names() == ["orders.explode", "orders.list_recent", "single"]
