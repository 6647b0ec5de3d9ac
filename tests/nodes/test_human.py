from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from node_docs import doc

import graph_runtime.run_manager as run_manager
from graph_runtime.errors import InputValidationError, WorkflowValidationError
from graph_runtime.models import EventType, TaskStatus
from graph_runtime.runtime import Runtime

SCHEMA = {
    "type": "object",
    "required": ["action"],
    "properties": {"action": {"enum": ["approve", "edit", "reject"]}, "text": {"type": "string"}},
}


TARGETS = {"reject": "dropped", "timeout": "dropped"}


def approval(**extra: Any) -> dict[str, Any]:
    config = {
        "prompt": "Send this reply?\n{{ state.draft }}",
        "actions": ["approve", "edit", "reject"],
        "response_schema": SCHEMA,
        "output": "decision",
        **extra,
    }
    branches = [*config["actions"], *(["timeout"] if "timeout" in config else [])]
    return doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "approve", "type": "human", "config": config},
            {
                "id": "compose",
                "type": "template",
                "config": {
                    "template": "{{ state.decision.action == 'edit' ? state.decision.text "
                    ": state.draft }}",
                    "output": "reply",
                },
            },
            {"id": "sent", "type": "output", "config": {"select": {"reply": "state.reply"}}},
            {"id": "dropped", "type": "output", "config": {"select": {"why": "state.decision"}}},
        ],
        [
            {"from": "start", "to": "approve"},
            *(
                {
                    "from": "approve",
                    "branch": b,
                    "to": "dropped" if b in ("reject", "timeout") else "compose",
                }
                for b in branches
            ),
            {"from": "compose", "to": "sent"},
        ],
    )


async def paused(rt: Runtime, workflow: dict[str, Any], run_id: str) -> list[Any]:
    events = [e async for e in rt.stream(workflow, {"draft": "Refund sent."}, run_id=run_id)]
    assert (await rt.get_run(run_id)).status is TaskStatus.PAUSED
    return [e for e in events if e.type is EventType.INTERRUPT]


async def test_interrupt_then_resume_takes_the_action_branch(rt: Runtime) -> None:
    [question] = await paused(rt, approval(), "h")
    assert question.data["value"] == {
        "type": "human",
        "node": "approve",
        "prompt": "Send this reply?\nRefund sent.",
        "actions": ["approve", "edit", "reject"],
        "schema": SCHEMA,
    }
    await rt.resume("h", {"action": "edit", "text": "Your refund is on its way."})
    response = await rt.wait("h", timeout=5)
    assert response.status is TaskStatus.COMPLETED
    assert response.result == {"reply": "Your refund is on its way."}
    step = next(s for s in await rt.steps("h") if s.step == "approve")
    assert step.result["branch"] == "edit" and step.attempt == 1


async def test_a_bad_answer_is_refused_up_front_and_the_run_stays_paused(rt: Runtime) -> None:
    await paused(rt, approval(), "bad")
    with pytest.raises(InputValidationError) as info:
        await rt.resume("bad", {"action": "send it"})
    assert info.value.code.value == "E001" and info.value.http_status == 422
    assert "/action" in str(info.value)
    assert (await rt.get_run("bad")).status is TaskStatus.PAUSED
    with pytest.raises(InputValidationError, match="not of type 'object'"):
        await rt.resume("bad", "reject")  # a bare action, but this schema wants an object
    await rt.resume("bad", {"action": "reject"})
    response = await rt.wait("bad", timeout=5)
    assert response.result == {"why": {"action": "reject"}}


async def test_a_bad_answer_that_reaches_the_node_is_asked_again(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_check(*args: Any) -> None:
        return None

    monkeypatch.setattr(run_manager, "check_answer", no_check)
    await paused(rt, approval(), "again")
    await rt.resume("again", {"action": "maybe"})
    assert (await rt.wait("again", timeout=5)).status is TaskStatus.PAUSED
    events = [e async for e in rt.events("again")]
    asked = [e.data["value"] for e in events if e.type is EventType.INTERRUPT]
    assert len(asked) == 2 and asked[1]["error"]["code"] == "E001"
    assert "approve" in asked[1]["error"]["message"]
    logs = [e.data for e in events if e.type is EventType.LOG]
    assert logs and logs[0]["level"] == "warning" and logs[0]["node_id"] == "approve"
    await rt.resume("again", {"action": "approve"})
    response = await rt.wait("again", timeout=5)
    assert response.status is TaskStatus.COMPLETED and response.result == {"reply": "Refund sent."}
    assert len([s for s in await rt.steps("again") if s.step == "approve"]) == 1


async def test_timeout_takes_the_timeout_branch(rt: Runtime) -> None:
    [question] = await paused(rt, approval(timeout=0.3), "late")
    expires = question.data["value"]["expires_at"]
    await rt.resume("late")  # before the deadline: asked again, same deadline
    assert (await rt.wait("late", timeout=5)).status is TaskStatus.PAUSED
    events = [e async for e in rt.events("late")]
    again = [e.data["value"] for e in events if e.type is EventType.INTERRUPT]
    assert [q["expires_at"] for q in again] == [expires, expires]
    await asyncio.sleep(0.35)
    await rt.resume("late", {"action": "approve"})  # too late
    response = await rt.wait("late", timeout=5)
    assert response.status is TaskStatus.COMPLETED
    assert response.result == {"why": {"action": "timeout"}}


async def test_cache_on_a_human_node_is_refused(rt: Runtime) -> None:
    workflow = approval()
    workflow["nodes"][1]["cache"] = {"ttl": 60}
    with pytest.raises(WorkflowValidationError) as info:
        await rt.save_workflow(workflow)
    assert "/nodes/1/cache" in {p.path for p in info.value.problems}


async def test_bad_response_schema_is_refused(rt: Runtime, tmp_path: Path) -> None:
    workflow = approval()
    workflow["nodes"][1]["config"]["response_schema"] = {"type": 12}
    with pytest.raises(WorkflowValidationError) as info:
        await rt.save_workflow(workflow)
    assert any("/response_schema" in p.path for p in info.value.problems)
