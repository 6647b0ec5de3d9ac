"""The ``openai`` provider against an OpenAI-compatible stub on loopback (real client code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from node_docs import chain, doc, runtime
from openai_stub import OpenAIStub

from graph_runtime.models import ErrorCode, EventType, TaskStatus
from nodes._models import ModelFactory

START = {"id": "start", "type": "input", "config": {}}
OUT = {"id": "out", "type": "output", "config": {}}
Stub = tuple[OpenAIStub, str]


def models(base_url: str) -> ModelFactory:
    # The endpoint and its key live on the server; documents say {"ref": "local"}.
    spec = {"provider": "openai", "model": "stub-model", "base_url": base_url, "api_key": "sk-srv"}
    return ModelFactory({"local": spec}, default="local")


def llm(node_id: str = "ask", **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "llm", "config": {"model": "fast", **config}}


DOC_MODELS = {"fast": {"ref": "default", "params": {"temperature": 0}}}


@tool
def weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


async def test_streaming_tokens_reach_token_events(tmp_path: Path, openai_stub: Stub) -> None:
    stub, url = openai_stub
    stub.replies.append({"content": "Hi from the stub"})
    wf = doc(
        [START, llm(prompt="Say hi to {{ state.name }}", output="reply"), OUT],
        chain("start", "ask", "out"),
        models=DOC_MODELS,
    )
    async with runtime(tmp_path, models=models(url)) as rt:
        events = [e async for e in rt.stream(wf, {"name": "Ada"}, run_id="s")]
        step = next(s for s in await rt.steps("s") if s.step == "ask")
    assert events[-1].data["result"]["reply"] == "Hi from the stub"
    tokens = [e.data["content"] for e in events if e.type is EventType.TOKEN]
    assert "".join(tokens) == "Hi from the stub" and len(tokens) >= 3
    request = stub.requests[0]
    assert request["stream"] is True and request["temperature"] == 0
    assert request["messages"] == [{"role": "user", "content": "Say hi to Ada"}]
    assert request["authorization"] == "Bearer sk-srv"
    assert step.result["usage"]["total_tokens"] == 12
    assert step.result["model"] == "openai:stub-model"


async def test_tool_calls_run_in_the_tool_loop(tmp_path: Path, openai_stub: Stub) -> None:
    stub, url = openai_stub
    stub.replies += [
        {"tool_calls": [{"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}]},
        {"content": "It is sunny in Oslo."},
    ]
    node = llm(
        system="Use tools.",
        prompt="Weather in Oslo?",
        tools=["weather"],
        tool_choice="auto",
        tool_loop={"max_steps": 2},
        output="answer",
    )
    wf = doc([START, node, OUT], chain("start", "ask", "out"), models=DOC_MODELS)
    async with runtime(tmp_path, models=models(url), tools=[weather]) as rt:
        response = await rt.run(wf, {}, run_id="tc")
        steps = await rt.steps("tc")
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["answer"] == "It is sunny in Oslo."
    assert [s.step for s in steps] == ["start", "ask.weather", "ask", "out"]
    assert steps[1].result == {"args": {"city": "Oslo"}, "output": "sunny in Oslo"}
    first, second = stub.requests
    assert first["tools"][0]["function"]["name"] == "weather" and first["tool_choice"] == "auto"
    assert second["messages"][-1] == {
        "role": "tool",
        "content": "sunny in Oslo",
        "tool_call_id": "c1",
    }


async def test_json_output_via_json_schema(tmp_path: Path, openai_stub: Stub) -> None:
    stub, url = openai_stub
    stub.replies.append({"json": {"category": "refund", "urgency": 4}})
    schema = {
        "type": "object",
        "required": ["category"],
        "properties": {"category": {"type": "string"}, "urgency": {"type": "integer"}},
    }
    node = llm(prompt="Classify", structured_output=schema, output="triage")
    wf = doc([START, node, OUT], chain("start", "ask", "out"), models=DOC_MODELS)
    async with runtime(tmp_path, models=models(url)) as rt:
        events = [e async for e in rt.stream(wf, {})]
    assert events[-1].data["result"]["triage"] == {"category": "refund", "urgency": 4}
    response_format = stub.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["required"] == ["category"]
    assert any(e.type is EventType.TOKEN for e in events)


async def test_rate_limit_is_e003_and_retried(tmp_path: Path, openai_stub: Stub) -> None:
    stub, url = openai_stub
    stub.replies += [{"status": 429}, {"content": "ok now"}]
    node = llm(prompt="x", output="r")
    node["retry"] = {"max_attempts": 2, "initial_interval": 0.01, "jitter": False}
    wf = doc([START, node, OUT], chain("start", "ask", "out"), models=DOC_MODELS)
    async with runtime(tmp_path, models=models(url)) as rt:
        response = await rt.run(wf, {}, run_id="rl")
        attempts = [s for s in await rt.steps("rl") if s.step == "ask"]
    assert response.status is TaskStatus.COMPLETED and response.result["r"] == "ok now"
    assert attempts[0].error_code is ErrorCode.EXECUTION_ERROR
    assert "rate limited (429)" in (attempts[0].error_message or "")
    assert len(stub.requests) == 2  # the SDK's own retries are off: the node's policy retries


async def test_server_error_without_retry_fails_the_run(tmp_path: Path, openai_stub: Stub) -> None:
    stub, url = openai_stub
    stub.replies.append({"status": 500})
    wf = doc([START, llm(prompt="x"), OUT], chain("start", "ask", "out"), models=DOC_MODELS)
    async with runtime(tmp_path, models=models(url)) as rt:
        response = await rt.run(wf, {})
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.EXECUTION_ERROR
    assert "HTTP 500" in (response.error or "")
