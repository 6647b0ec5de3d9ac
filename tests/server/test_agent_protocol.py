"""The official ``langgraph-sdk`` client (sync and async) against a real server: assistants,
threads, a human-approval run through its interrupt, state, history, fork, update_state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers.ap_workflows import write_workflows
from helpers.live_server import live_server
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError
from langgraph_sdk.schema import StreamPart

from graph_runtime.config import RuntimeConfig

APPROVAL_ID = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "approval"))


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module: its tests use their own threads."""
    tmp = tmp_path_factory.mktemp("ap")
    config = RuntimeConfig(
        db=tmp / "runs.db",
        workflows=write_workflows(tmp / "workflows"),
        heartbeat_seconds=1.0,
        shutdown_grace_seconds=0.5,
    )
    with live_server(config) as base_url:
        yield base_url


def parts_of(stream: list[StreamPart]) -> list[tuple[str, Any]]:
    return [(p.event, p.data) for p in stream]


def test_assistants_search_get_graph_and_schemas(url: str) -> None:
    client = get_sync_client(url=url)
    found = client.assistants.search(graph_id="approval")
    assert [a["assistant_id"] for a in found] == [APPROVAL_ID]
    assistant = found[0]
    assert assistant["graph_id"] == "approval" and assistant["name"] == "Reply approval"
    assert assistant["metadata"] == {"created_by": "system"} and assistant["version"] == 1
    assert client.assistants.get(APPROVAL_ID) == assistant
    assert client.assistants.get("approval") == assistant  # graph ids work everywhere
    everything = client.assistants.search(limit=2)
    assert len(everything) == 2
    page = client.assistants.search(limit=2, response_format="object")
    assert page["next"] == "2"
    graph = client.assistants.get_graph("approval")
    assert {n["id"] for n in graph["nodes"]} >= {"__start__", "approve", "compose", "__end__"}
    assert {"source": "polish", "target": "approve"} in graph["edges"]
    schemas = client.assistants.get_schemas(APPROVAL_ID)
    assert schemas["input_schema"]["required"] == ["draft"]
    assert set(schemas["state_schema"]["properties"]) == {"draft", "decision", "reply", "trail"}
    with pytest.raises(NotFoundError) as missing:
        client.assistants.get(str(uuid.uuid4()))
    assert missing.value.code == "E001"


def test_thread_create_get_search_delete(url: str) -> None:
    client = get_sync_client(url=url)
    tag = uuid.uuid4().hex
    thread = client.threads.create(metadata={"tag": tag})
    thread_id = thread["thread_id"]
    assert thread["status"] == "idle" and thread["values"] is None
    assert thread["metadata"] == {"tag": tag}
    with pytest.raises(ConflictError):
        client.threads.create(thread_id=thread_id)
    again = client.threads.create(thread_id=thread_id, if_exists="do_nothing")
    assert again["thread_id"] == thread_id
    assert client.threads.get(thread_id)["metadata"] == {"tag": tag}
    assert [t["thread_id"] for t in client.threads.search(metadata={"tag": tag})] == [thread_id]
    patched = client.threads.update(thread_id, metadata={"more": 1})
    assert patched["metadata"] == {"tag": tag, "more": 1}
    assert client.threads.count(metadata={"tag": tag}) == 1
    state = client.threads.get_state(thread_id)
    assert state["values"] == {} and state["checkpoint"]["thread_id"] == thread_id
    client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        client.threads.get(thread_id)
    with pytest.raises(UnprocessableEntityError):
        client.threads.get("not-a-uuid")


async def test_stream_through_the_interrupt_then_resume(url: str) -> None:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    first = [
        p
        async for p in client.runs.stream(
            thread_id,
            "approval",
            input={"draft": "Refund sent"},
            stream_mode=["values", "updates", "custom"],
        )
    ]
    events = [p.event for p in first]
    assert events[0] == "metadata" and events[-1] == "end"
    assert first[-1].data["status"] == "interrupted"
    ids = [int(p.id or 0) for p in first]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # strictly increasing
    updates = [p.data for p in first if p.event == "updates"]
    assert {"polish": {"draft": "Refund sent!", "trail": ["polish"]}} in updates
    [question] = updates[-1]["__interrupt__"]
    assert question["value"]["prompt"] == "Send this reply?\nRefund sent!"
    last_values = [p.data for p in first if p.event == "values"][-1]
    assert last_values["__interrupt__"] == [question]
    steps = [p.data["task_step_result"] for p in first if p.event == "custom"]
    assert [s["step"] for s in steps] == ["start", "polish"]

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert [i["id"] for v in thread["interrupts"].values() for i in v] == [question["id"]]
    assert thread["metadata"]["graph_id"] == "approval"
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["approve"]
    assert state["tasks"][0]["interrupts"][0]["id"] == question["id"]

    second = [
        p
        async for p in client.runs.stream(
            thread_id,
            APPROVAL_ID,
            command={"resume": {"action": "edit", "text": "Your refund is on its way."}},
            stream_mode="updates",
        )
    ]
    assert parts_of(second)[1:] == [
        (
            "updates",
            {"approve": {"decision": {"action": "edit", "text": "Your refund is on its way."}}},
        ),
        ("updates", {"compose": {"reply": "Your refund is on its way.", "trail": ["compose"]}}),
        ("updates", {"sent": {}}),
        ("end", {"run_id": second[0].data["run_id"], "status": "success"}),
    ]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    assert thread["values"]["reply"] == "Your refund is on its way."

    history = await client.threads.get_history(thread_id, limit=50)
    assert history[0]["next"] == [] and history[-1]["metadata"]["source"] == "input"
    assert [h["checkpoint"]["checkpoint_id"] for h in history] == sorted(
        (h["checkpoint"]["checkpoint_id"] for h in history), reverse=True
    )
    runs = await client.runs.list(thread_id)
    assert [r["run_id"] for r in runs] == [second[0].data["run_id"], first[0].data["run_id"]]
    assert [r["status"] for r in runs] == ["success", "interrupted"]
    assert all(r["assistant_id"] == APPROVAL_ID for r in runs)


def test_fork_from_an_earlier_checkpoint_and_resume_differently(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    paused = client.runs.wait(thread_id, "approval", input={"draft": "Hello"})
    assert "__interrupt__" in paused
    done = client.runs.wait(thread_id, "approval", command={"resume": {"action": "approve"}})
    assert done["reply"] == "Hello!"
    [at_question] = [
        h for h in client.threads.get_history(thread_id, limit=50) if h["next"] == ["approve"]
    ]
    checkpoint_id = at_question["checkpoint"]["checkpoint_id"]
    old = client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)
    assert old["values"]["reply"] == "" and old["next"] == ["approve"]
    # Resuming at the old checkpoint forks it: the earlier answer is not replayed
    # (langgraph#7361), the new one is taken.
    forked = client.runs.wait(
        thread_id,
        "approval",
        command={"resume": {"action": "reject"}},
        checkpoint_id=checkpoint_id,
    )
    assert forked["decision"] == {"action": "reject"} and forked["reply"] == ""
    assert client.threads.get_state(thread_id)["values"]["decision"] == {"action": "reject"}
    sources = [h["metadata"]["source"] for h in client.threads.get_history(thread_id, limit=50)]
    assert "update" in sources  # the fork point


def test_update_state_then_resume(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    with pytest.raises(httpx.HTTPStatusError) as no_graph:
        client.threads.update_state(thread_id, {"draft": "x"})
    assert no_graph.value.response.status_code == 400
    client.runs.wait(thread_id, "approval", input={"draft": "Draft"})
    written = client.threads.update_state(thread_id, {"draft": "Better draft"})
    assert written["checkpoint"]["thread_id"] == thread_id
    state = client.threads.get_state(thread_id)
    assert state["values"]["draft"] == "Better draft"
    assert state["checkpoint"]["checkpoint_id"] == written["checkpoint_id"]
    assert state["metadata"]["source"] == "update"
    done = client.runs.wait(thread_id, "approval", command={"resume": {"action": "approve"}})
    assert done["reply"] == "Better draft"
    assert client.threads.get(thread_id)["status"] == "idle"
