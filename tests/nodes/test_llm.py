from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool
from node_docs import chain, doc, runtime

from graph_runtime.errors import NodeExecutionError, RunTimeoutError, WorkflowValidationError
from graph_runtime.models import ErrorCode, EventType, TaskStatus
from graph_runtime.runtime import Runtime
from nodes._models import ModelFactory, ScriptedChatModel, provider_error
from nodes.llm import Config

START = {"id": "start", "type": "input", "config": {}}
OUT = {"id": "out", "type": "output", "config": {}}


def fake(*responses: Any) -> dict[str, Any]:
    return {"provider": "fake", "responses": list(responses)}


def llm(node_id: str = "ask", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "llm", "config": config}


@tool
def lookup(order: int) -> dict[str, Any]:
    """Look an order up."""
    return {"order": order, "status": "shipped"}


@tool
def broken(order: int) -> str:
    """Always fails."""
    raise ValueError("database down")


async def test_text_answer_streams_token_events(rt: Runtime) -> None:
    wf = doc(
        [
            START,
            llm(model=fake("Hello there, Ada"), prompt="Greet {{ state.name }}", output="reply"),
            OUT,
        ],
        chain("start", "ask", "out"),
    )
    events = [e async for e in rt.stream(wf, {"name": "Ada"}, run_id="t")]
    tokens = [e.data for e in events if e.type is EventType.TOKEN]
    assert "".join(t["content"] for t in tokens) == "Hello there, Ada"
    assert {t["node_id"] for t in tokens} == {"ask"}
    assert events[-1].data["result"]["reply"] == "Hello there, Ada"
    step = next(s for s in await rt.steps("t") if s.step == "ask")
    assert step.result == {"reply": "Hello there, Ada", "model": "fake"}


async def test_stream_false_sends_no_tokens(rt: Runtime) -> None:
    wf = doc(
        [START, llm(model=fake("quiet words here"), prompt="x", output="r", stream=False), OUT],
        chain("start", "ask", "out"),
    )
    events = [e async for e in rt.stream(wf, {})]
    assert not [e for e in events if e.type is EventType.TOKEN and len(e.data["content"]) < 9]
    assert events[-1].data["result"]["r"] == "quiet words here"


SCHEMA = {
    "type": "object",
    "required": ["category", "urgency"],
    "properties": {"category": {"enum": ["refund", "other"]}, "urgency": {"type": "integer"}},
}


async def test_structured_output_is_validated_and_retried(rt: Runtime) -> None:
    node = llm(
        model=fake({"category": "bogus", "urgency": 1}, {"category": "refund", "urgency": 4}),
        system="Triage.",
        prompt="{{ state.ticket }}",
        structured_output=SCHEMA,
        output="triage",
    )
    node["retry"] = {"max_attempts": 2, "initial_interval": 0.01, "jitter": False}
    wf = doc([START, node, OUT], chain("start", "ask", "out"))
    response = await rt.run(wf, {"ticket": "money back"}, run_id="so")
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["triage"] == {"category": "refund", "urgency": 4}
    attempts = [s for s in await rt.steps("so") if s.step == "ask"]
    assert [s.error_code for s in attempts] == [ErrorCode.EXECUTION_ERROR, None]
    assert "/category" in (attempts[0].error_message or "")


async def test_structured_output_that_is_not_json_fails_e003(rt: Runtime) -> None:
    wf = doc(
        [START, llm(model=fake("not json"), prompt="x", structured_output=SCHEMA), OUT],
        chain("start", "ask", "out"),
    )
    response = await rt.run(wf, {})
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.EXECUTION_ERROR


async def test_tool_loop_records_each_call(tmp_path: Path) -> None:
    script = fake(
        {"tool_calls": [{"name": "orders_lookup", "args": {"order": 7}}]},
        {
            "tool_calls": [
                {"name": "orders_lookup", "args": {"order": 8}},
                {"name": "broken", "args": {"order": 8}},
            ]
        },
        "Order 7 shipped; 8 too.",
    )
    node = llm(
        "write",
        model="writer",
        prompt="Where are my orders?",
        tools=["orders.lookup", "broken"],
        tool_loop={"max_steps": 3},
        output="draft",
        append_messages=True,
    )
    wf = doc(
        [START, node, OUT],
        chain("start", "write", "out"),
        models={"writer": script},
        state={"messages": {"type": "messages", "reducer": "messages"}, "draft": {}},
    )
    tools = {"orders.lookup": lookup, "broken": broken}
    async with runtime(tmp_path, tools=tools) as rt:
        response = await rt.run(wf, {}, run_id="tl")
        steps = await rt.steps("tl")
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["draft"] == "Order 7 shipped; 8 too."
    types = [m["type"] for m in response.result["messages"]]
    assert types == ["human", "ai", "tool", "ai", "tool", "tool", "ai"]
    calls = [s for s in steps if s.step.startswith("write.")]
    assert [s.step for s in calls] == ["write.orders.lookup"] * 2 + ["write.broken"]
    assert calls[0].result == {"args": {"order": 7}, "output": {"order": 7, "status": "shipped"}}
    assert calls[2].error_code is ErrorCode.EXECUTION_ERROR
    assert "database down" in (calls[2].error_message or "")
    assert all(s.node_type == "tool" and s.task_id for s in calls)
    assert [s.step for s in steps] == ["start", *[s.step for s in calls], "write", "out"]


async def test_tool_loop_gives_up_after_max_steps(tmp_path: Path) -> None:
    again = {"tool_calls": [{"name": "lookup", "args": {"order": 1}}]}
    node = llm(
        model=fake(again, again, again), prompt="x", tools=["lookup"], tool_loop={"max_steps": 2}
    )
    wf = doc([START, node, OUT], chain("start", "ask", "out"))
    async with runtime(tmp_path, tools=[lookup]) as rt:
        response = await rt.run(wf, {}, run_id="mx")
    assert response.status is TaskStatus.FAILED
    assert "max_steps=2" in (response.error or "")


async def test_explicit_agent_loop_with_a_tool_node(tmp_path: Path) -> None:
    agent = llm(
        "agent",
        model=fake({"tool_calls": [{"name": "lookup", "args": {"order": 3}}]}, "It shipped."),
        messages="state.messages",
        tools=["lookup"],
        output="answer",
        append_messages=True,
    )
    wf = doc(
        [agent, {"id": "tools", "type": "tool", "config": {"calls": "last_message"}}, OUT],
        [
            # No input node: it would write `messages` a second time through the reducer.
            {"from": "__start__", "to": "agent"},
            {"from": "agent", "to": "tools", "when": "has_tool_calls(state.messages)"},
            {"from": "agent", "to": "out", "else": True},
            {"from": "tools", "to": "agent"},
        ],
        state={"messages": {"type": "messages", "reducer": "messages"}, "answer": {}},
    )
    async with runtime(tmp_path, tools=[lookup]) as rt:
        response = await rt.run(wf, {"messages": [{"type": "human", "content": "hi"}]}, run_id="a")
        steps = [s.step for s in await rt.steps("a")]
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["answer"] == "It shipped."
    assert [m["type"] for m in response.result["messages"]] == ["human", "ai", "tool", "ai"]
    assert steps == ["agent", "tools.lookup", "tools", "agent", "out"]


async def test_unknown_model_alias_is_refused_when_saved(rt: Runtime) -> None:
    wf = doc([START, llm(model="nope", prompt="x"), OUT], chain("start", "ask", "out"))
    with pytest.raises(WorkflowValidationError) as info:
        await rt.save_workflow(wf)
    assert "/nodes/1/config/model" in {p.path for p in info.value.problems}


async def test_invalid_structured_output_schema_is_refused(rt: Runtime) -> None:
    bad = llm(model=fake("{}"), prompt="x", structured_output={"type": "objekt"})
    with pytest.raises(WorkflowValidationError) as info:
        await rt.save_workflow(doc([START, bad, OUT], chain("start", "ask", "out")))
    assert any(p.path.startswith("/nodes/1/config/structured_output") for p in info.value.problems)


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="prompt"):
        Config(model="m")
    with pytest.raises(ValueError, match="cannot be combined"):
        Config(model="m", prompt="x", tools=["t"], structured_output={})
    with pytest.raises(ValueError, match="need 'tools'"):
        Config.model_validate({"model": "m", "prompt": "x", "tool_loop": {"max_steps": 1}})


def test_model_factory_resolution_and_refusals() -> None:
    server = ModelFactory(
        {"local": {"provider": "openai", "base_url": "http://10.0.0.9/v1", "api_key": "sk-srv"}},
        default="local",
        environ={"OPENAI_API_KEY": "sk-env", "AWS_SECRET": "x"},
    )
    assert server.names() == {"local", "default"}
    assert server.describe({"ref": "default", "model": "m1"}, {}) == "openai:m1"
    model = server.create("w", {"w": {"ref": "local", "params": {"temperature": 0}}})
    assert model.temperature == 0 and model.openai_api_key.get_secret_value() == "sk-srv"  # type: ignore[attr-defined]
    refused: list[dict[str, Any]] = [
        {"provider": "openai", "api_key_env": "AWS_SECRET"},
        {
            "provider": "openai",
            "base_url": "https://evil.example/v1",
            "api_key_env": "OPENAI_API_KEY",
        },
        {"provider": "openai", "params": {"default_headers": {"x": "y"}}},
        {"provider": "openai", "api_key": "sk-in-doc"},
        {"ref": "local", "base_url": "https://evil.example/v1"},
        {"ref": "missing"},
    ]
    for spec in refused:
        with pytest.raises(WorkflowValidationError):
            server.create(spec, {})
    # A document endpoint without a key never receives the server's key.
    own = server.create({"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}, {})
    assert own.openai_api_key.get_secret_value() == "EMPTY"  # type: ignore[attr-defined]
    with pytest.raises(WorkflowValidationError, match="allows no model specs"):
        ModelFactory(allow_inline=False).create(fake("x"), {})
    if importlib.util.find_spec("langchain") is None:
        other = ModelFactory({"claude": {"provider": "anthropic", "model": "m"}})
        with pytest.raises(WorkflowValidationError, match="needs the `langchain` package"):
            other.create("claude", {})


def test_fake_models_continue_per_scope() -> None:
    factory = ModelFactory()
    spec = fake("one", "two")
    first = factory.create(spec, {}, scope="run:a")
    assert first is factory.create(spec, {}, scope="run:a")
    assert first is not factory.create(spec, {}, scope="run:b")
    assert isinstance(first, ScriptedChatModel)
    assert first.invoke("x").content == "one" and first.invoke("x").content == "two"
    with pytest.raises(NodeExecutionError, match="no scripted responses left"):
        first.invoke("x")


class _StatusError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


class RateLimitError(Exception):
    pass


def test_provider_errors_map_to_codes() -> None:
    assert isinstance(provider_error(TimeoutError("slow"), "m"), RunTimeoutError)
    limited = provider_error(_StatusError(429), "m")
    assert limited.code is ErrorCode.EXECUTION_ERROR and "rate limited" in limited.message
    assert "rate limited" in provider_error(RateLimitError("x"), "m").message
    assert "HTTP 500" in provider_error(_StatusError(500), "m").message
    wrapped = ValueError("outer")
    wrapped.__cause__ = TimeoutError("inner")
    assert provider_error(wrapped, "m").code is ErrorCode.TIMEOUT_ERROR
