"""The support-triage examples end to end: fake LLM, and the openai provider on the stub."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from node_docs import runtime
from openai_stub import OpenAIStub

from graph_runtime.models import EventType, TaskStatus
from nodes._models import ModelFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from support_tools import TOOLS  # noqa: E402

TICKET = {"ticket": "I want my money back for order #1234."}
STEPS = ["start", "classify", "route", "lookup", "approve", "compose", "result"]


@pytest.mark.parametrize(
    ("answer", "reply"),
    [
        ({"action": "approve"}, "Hi,\n\nYour refund request is noted: the refund is approved."),
        ({"action": "edit", "text": "Done!"}, "Hi,\n\nDone!"),
    ],
)
async def test_fake_triage_asks_a_person_then_replies(
    tmp_path: Path, answer: dict[str, Any], reply: str
) -> None:
    async with runtime(tmp_path, tools=TOOLS) as rt:
        events = [e async for e in rt.stream(EXAMPLES / "support_triage.json", TICKET, run_id="s")]
        [question] = [e.data["value"] for e in events if e.type is EventType.INTERRUPT]
        assert question["prompt"].startswith("Reply to a refund ticket (urgency 4)")
        await rt.resume("s", answer)
        response = await rt.wait("s", timeout=5)
        steps = await rt.steps("s")
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result == {
        "reply": reply + "\n\nSupport team",
        "category": "refund",
        "refund": "approved",
    }
    assert [s.step for s in steps] == STEPS
    assert steps[3].result["output"] == {"order": "1234", "status": "approved", "amount": 42.0}


async def test_rejected_reply_ends_at_the_other_output(tmp_path: Path) -> None:
    async with runtime(tmp_path, tools=TOOLS) as rt:
        await rt.run(EXAMPLES / "support_triage.json", TICKET, run_id="r")
        await rt.resume("r", {"action": "reject"})
        response = await rt.wait("r", timeout=5)
    assert response.result == {"reply": "", "category": "refund"}


async def test_openai_triage_on_the_stub(
    tmp_path: Path, openai_stub: tuple[OpenAIStub, str]
) -> None:
    stub, url = openai_stub
    stub.replies.append({"json": {"category": "question", "urgency": 2}})
    document = json.loads((EXAMPLES / "support_triage_openai.json").read_text())
    assert document["models"] == {
        "triage": {"ref": "openai", "model": "gpt-4o-mini", "params": {"temperature": 0}}
    }
    alias = {"provider": "openai", "base_url": url, "api_key": "sk-server-side"}
    models = ModelFactory({"openai": alias})
    async with runtime(tmp_path, tools=TOOLS, models=models) as rt:
        events = [e async for e in rt.stream(document, TICKET, run_id="o")]
        assert any(e.type is EventType.TOKEN and e.data["node_id"] == "classify" for e in events)
        await rt.resume("o", {"action": "approve"})
        response = await rt.wait("o", timeout=5)
        steps = [s.step for s in await rt.steps("o")]
    assert response.result == {
        "reply": "Hi,\n\nYour question request is noted.\n\nSupport team",
        "category": "question",
        "refund": "none",
    }
    assert steps == ["start", "classify", "route", "approve", "compose", "result"]
    request = stub.requests[0]
    assert request["model"] == "gpt-4o-mini" and request["authorization"] == "Bearer sk-server-side"
    assert request["response_format"]["type"] == "json_schema"
