"""Run semantics through the real ``langgraph-sdk`` and ``RemoteGraph``: multitask strategies,
joining and rejoining streams by ``Last-Event-ID``, cancel, delete, errors, stateless runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers.ap_workflows import write_workflows
from helpers.live_server import live_server
from helpers.sse import SSEComment, SSEEvent, iter_sse
from langgraph.pregel.remote import RemoteGraph
from langgraph.types import Command
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError
from langgraph_sdk.schema import StreamPart

from graph_runtime.config import RuntimeConfig


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ap-runs")
    config = RuntimeConfig(
        db=tmp / "runs.db",
        workflows=write_workflows(tmp / "workflows"),
        heartbeat_seconds=0.3,
        shutdown_grace_seconds=0.5,
    )
    with live_server(config) as base_url:
        yield base_url


def ids(parts: list[StreamPart]) -> list[int]:
    return [int(p.id) for p in parts if p.id is not None]


async def test_reject_a_second_run_then_cancel_with_wait(url: str) -> None:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "ticker", input={})
    assert run["status"] == "pending" and run["thread_id"] == thread_id
    with pytest.raises(ConflictError):
        await client.runs.create(thread_id, "ticker", input={}, multitask_strategy="reject")
    async for part in client.runs.join_stream(thread_id, run["run_id"], stream_mode="values"):
        if part.event == "values" and part.data.get("ticks"):
            break  # it is running and has ticked
    values = await client.runs.cancel(thread_id, run["run_id"], wait=True)
    assert 1 <= len(values["ticks"]) < 10
    cancelled = await client.runs.get(thread_id, run["run_id"])
    assert cancelled["status"] == "interrupted"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted" and thread["error"]["error"] == "UserInterrupt"
    with pytest.raises(ConflictError):  # it already ended
        await client.runs.cancel(thread_id, run["run_id"])


async def test_join_drop_and_rejoin_with_last_event_id(url: str) -> None:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "ticker", input={}, stream_mode=["values", "custom"])
    run_id = run["run_id"]
    seen: list[StreamPart] = []
    async for part in client.runs.join_stream(thread_id, run_id):
        seen.append(part)
        if len(ids(seen)) >= 3:
            break  # drop the connection mid-run
    last = ids(seen)[-1]
    rest = [p async for p in client.runs.join_stream(thread_id, run_id, last_event_id=str(last))]
    assert rest[-1].event == "end" and rest[-1].data["status"] == "success"
    assert min(ids(rest)) > last
    assert ids(rest) == sorted(set(ids(rest)))
    # 0 and -1 replay everything from the metadata event; a finished run still ends with end.
    for cursor in ("0", "-1"):
        everything = [
            p
            async for p in client.runs.join_stream(
                thread_id, run_id, last_event_id=cursor, stream_mode=["values"]
            )
        ]
        assert everything[0].event == "metadata" and everything[-1].event == "end"
        assert {p.event for p in everything} == {"metadata", "values", "end"}
    final = [p.data for p in everything if p.event == "values"][-1]
    assert final["ticks"] == [str(i) for i in range(10)]
    # Without Last-Event-ID, a finished run's stream is just its end.
    tail = [p async for p in client.runs.join_stream(thread_id, run_id)]
    assert [p.event for p in tail] == ["end"]


def test_stream_mode_query_forms_and_headers(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "ticker", input={}, stream_mode=["values", "updates"])
    client.runs.join(thread_id, run["run_id"])
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    forms: list[Any] = [
        [("stream_mode", "values"), ("stream_mode", "updates")],
        [("stream_mode", json.dumps(["values", "updates"]))],
        [("stream_mode", "values,updates")],
    ]
    with httpx.Client(base_url=url, timeout=10) as http:
        for params in forms:
            with http.stream(
                "GET", path, params=params, headers={"Last-Event-ID": "0"}
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["location"] == path
                assert response.headers["content-location"] == path.removesuffix("/stream")
                names = {e.event for e in iter_sse(response) if isinstance(e, SSEEvent)}
            assert names == {"metadata", "values", "updates", "end"}, params
        bad = http.get(path, params={"stream_mode": "nope"})
        assert bad.status_code == 422 and bad.json()["code"] == "E001"


def test_heartbeats_keep_a_quiet_stream_open(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    body = {"assistant_id": "ticker", "input": {}, "stream_mode": ["custom"]}
    with httpx.Client(base_url=url, timeout=10) as http:
        with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
            frames = list(iter_sse(response))
    comments = [f for f in frames if isinstance(f, SSEComment)]
    assert comments and all(c.text.strip() == "heartbeat" for c in comments)


async def test_interrupt_and_enqueue_strategies(url: str) -> None:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread_id, "ticker", input={})
    second = await client.runs.create(thread_id, "ticker", input={}, multitask_strategy="interrupt")
    queued = await client.runs.create(thread_id, "ticker", input={})  # enqueue (default)
    assert (await client.runs.get(thread_id, queued["run_id"]))["status"] == "pending"
    await client.runs.join(thread_id, queued["run_id"])
    statuses = {r["run_id"]: r["status"] for r in await client.runs.list(thread_id, limit=10)}
    assert statuses == {
        first["run_id"]: "interrupted",
        second["run_id"]: "success",
        queued["run_id"]: "success",
    }
    second_run = await client.runs.get(thread_id, second["run_id"])
    queued_run = await client.runs.get(thread_id, queued["run_id"])
    assert queued_run["updated_at"] >= second_run["updated_at"]


def test_rollback_deletes_the_run_and_its_checkpoints(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    first = client.runs.create(thread_id, "ticker", input={})
    replacement = client.runs.create(thread_id, "ticker", input={}, multitask_strategy="rollback")
    with pytest.raises(NotFoundError):
        client.runs.get(thread_id, first["run_id"])
    values = client.runs.join(thread_id, replacement["run_id"])
    assert values["ticks"] == [str(i) for i in range(10)]  # nothing of the first run is left
    history = client.threads.get_history(thread_id, limit=100)
    assert {h["metadata"].get("run_id") for h in history} == {replacement["run_id"]}


def test_list_and_delete_runs_and_threads(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    runs = [client.runs.create(thread_id, "approval", input={"draft": str(i)}) for i in range(3)]
    for run in runs:
        client.runs.join(thread_id, run["run_id"])
    listed = client.runs.list(thread_id, limit=2)
    assert [r["run_id"] for r in listed] == [runs[2]["run_id"], runs[1]["run_id"]]
    client.runs.delete(thread_id, runs[0]["run_id"])
    assert len(client.runs.list(thread_id)) == 2
    with pytest.raises(NotFoundError):
        client.runs.delete(thread_id, runs[0]["run_id"])
    client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        client.runs.list(thread_id)
    with pytest.raises(NotFoundError):
        client.runs.create(thread_id, "approval", input={"draft": "gone"})


def test_errors_reach_the_client(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    parts = list(client.runs.stream(thread_id, "boom", input={}, stream_mode="updates"))
    assert [p.event for p in parts][-2:] == ["error", "end"]
    assert "division by zero" in parts[-2].data["message"]
    assert parts[-1].data["status"] == "error"
    thread = client.threads.get(thread_id)
    assert thread["status"] == "error" and "division by zero" in thread["error"]["message"]
    failed = client.runs.wait(thread_id, "boom", input={}, raise_error=False)
    assert "division by zero" in failed["__error__"]["message"]
    with httpx.Client(base_url=url, timeout=10) as http:
        unknown = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "nope"})
        assert unknown.status_code == 422 and "Invalid assistant" in unknown.json()["detail"]
        resume = http.post(
            "/runs/wait", json={"assistant_id": "approval", "command": {"resume": 1}}
        )
        assert resume.status_code == 400


def test_stateless_runs_and_if_not_exists(url: str) -> None:
    client = get_sync_client(url=url)
    values = client.runs.wait(None, "approval", input={"draft": "once"})
    assert values["draft"] == "once!" and "__interrupt__" in values
    parts = list(client.runs.stream(None, "ticker", input={}, stream_mode="values"))
    assert parts[-1].event == "end" and parts[-1].data["status"] == "success"
    new_id = "0b6b5c7e-7f38-4f5c-9a43-9a1b5e1d3f10"
    with pytest.raises(httpx.HTTPStatusError) as missing:  # runs.wait raises httpx's own
        client.runs.wait(new_id, "approval", input={"draft": "x"})
    assert missing.value.response.status_code == 404
    made = client.runs.wait(new_id, "approval", input={"draft": "x"}, if_not_exists="create")
    assert made["draft"] == "x!"
    assert client.threads.get(new_id)["metadata"]["graph_id"] == "approval"


def test_interrupt_before_and_continue_with_no_input(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    parts = list(
        client.runs.stream(
            thread_id,
            "approval",
            input={"draft": "b"},
            interrupt_before=["polish"],
            stream_mode="updates",
        )
    )
    assert {"__interrupt__": []} in [p.data for p in parts]
    state = client.threads.get_state(thread_id)
    assert state["next"] == ["polish"] and client.threads.get(thread_id)["status"] == "interrupted"
    values = client.runs.wait(thread_id, "approval")  # no input: go on from the breakpoint
    assert values["draft"] == "b!" and "__interrupt__" in values


def test_remote_graph_invoke_state_stream_history(url: str) -> None:
    remote = RemoteGraph("approval", url=url)
    thread_id = get_sync_client(url=url).threads.create()["thread_id"]
    config: Any = {"configurable": {"thread_id": thread_id}}
    out = remote.invoke({"draft": "Remote"}, config)
    [question] = out["__interrupt__"]
    assert question["value"]["node"] == "approve"
    state = remote.get_state(config)
    assert state.next == ("approve",) and state.values["draft"] == "Remote!"
    assert state.tasks[0].interrupts[0].id == question["id"]
    chunks = list(
        remote.stream(Command(resume={"action": "approve"}), config, stream_mode="updates")
    )
    assert {"compose": {"reply": "Remote!", "trail": ["compose"]}} in chunks
    history = list(remote.get_state_history(config))
    assert history[0].next == () and history[-1].metadata["source"] == "input"
    assert set(remote.get_graph().nodes) >= {"approve", "compose"}


async def test_remote_graph_async(url: str) -> None:
    remote = RemoteGraph("approval", url=url)
    config: Any = {
        "configurable": {"thread_id": (await get_client(url=url).threads.create())["thread_id"]}
    }
    out = await remote.ainvoke({"draft": "Async"}, config)
    assert "__interrupt__" in out
    state = await remote.aget_state(config)
    assert state.next == ("approve",)
    updates = [
        c
        async for c in remote.astream(
            Command(resume={"action": "edit", "text": "Edited"}), config, stream_mode="updates"
        )
    ]
    assert {"compose": {"reply": "Edited", "trail": ["compose"]}} in updates
    assert len([s async for s in remote.aget_state_history(config)]) >= 6
    await asyncio.sleep(0)


def test_message_modes_stream_the_model_tokens(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    tuples = list(client.runs.stream(thread_id, "chat", input={}, stream_mode="messages-tuple"))
    tokens = [p.data for p in tuples if p.event == "messages"]
    assert tokens and all(len(t) == 2 for t in tokens)  # [message chunk, metadata]
    assert "".join(t[0]["content"] for t in tokens) == "hello there friend"
    assert tokens[0][1]["langgraph_node"] == "ask"
    thread_id = client.threads.create()["thread_id"]
    parts = list(client.runs.stream(thread_id, "chat", input={}, stream_mode="messages"))
    names = [p.event for p in parts]
    assert names.count("messages/metadata") == 1
    partial = [p.data[0]["content"] for p in parts if p.event == "messages/partial"]
    assert partial[-1] == "hello there friend" and len(partial) > 1
    remote = RemoteGraph("chat", url=url)
    config: Any = {"configurable": {"thread_id": client.threads.create()["thread_id"]}}
    streamed = list(remote.stream({}, config, stream_mode="messages"))
    assert "".join(chunk["content"] for chunk, _meta in streamed) == "hello there friend"


def test_subgraph_events_are_named_mode_and_namespace(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    with_sub = list(
        client.runs.stream(
            thread_id, "parent", input={}, stream_mode="updates", stream_subgraphs=True
        )
    )
    child = [p for p in with_sub if p.event.startswith("updates|check:")]
    assert {"weigh": {"verdict": "ok"}} in [p.data for p in child]
    assert {"check": {"verdict": "ok"}} in [p.data for p in with_sub if p.event == "updates"]
    thread_id = client.threads.create()["thread_id"]
    root_only = list(client.runs.stream(thread_id, "parent", input={}, stream_mode="updates"))
    assert not [p for p in root_only if "|" in p.event]


async def test_thread_stream_follows_the_runs_of_a_thread(url: str) -> None:
    client = get_client(url=url)
    thread_id = (await client.threads.create())["thread_id"]
    first = await client.runs.create(thread_id, "ticker", input={}, stream_mode=["values"])
    parts: list[StreamPart] = []
    async for part in await client.threads.join_stream(thread_id):
        parts.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            break
    assert parts[-1].data == {"status": "run_done", "run_id": first["run_id"]}
    assert [p.data["ticks"] for p in parts if p.event == "values"][-1] == [
        str(i) for i in range(10)
    ]
    assert ids(parts) == sorted(set(ids(parts)))
    # A run started later, read by reconnecting after the last id seen.
    second = await client.runs.create(thread_id, "ticker", input={})
    more: list[StreamPart] = []
    async for part in await client.threads.join_stream(thread_id, last_event_id=parts[-1].id):
        more.append(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            break
    assert more[0].data["run_id"] == second["run_id"]
    assert more[-1].data == {"status": "run_done", "run_id": second["run_id"]}
    assert min(ids(more)) > max(ids(parts))
