"""Wait keepalives, ``on_disconnect``, ``after_seconds`` and webhooks of protocol runs."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.ap_workflows import APPROVAL, TICKER, write_workflows
from helpers.live_server import live_server
from helpers.sse import SSEEvent, iter_sse
from helpers.waits import eventually
from langgraph_sdk import get_sync_client

from graph_runtime.config import RuntimeConfig
from graph_runtime.runtime import Runtime
from server.agent_protocol import AgentProtocol
from server.agent_protocol.models import RunCreate


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ap-extras")
    config = RuntimeConfig(
        db=tmp / "runs.db",
        workflows=write_workflows(tmp / "workflows"),
        heartbeat_seconds=0.3,
        shutdown_grace_seconds=0.5,
    )
    with live_server(config) as base_url:
        yield base_url


def test_wait_sends_newlines_then_the_values(url: str) -> None:
    thread_id = get_sync_client(url=url).threads.create()["thread_id"]
    with httpx.Client(base_url=url, timeout=10) as http:
        response = http.post(
            f"/threads/{thread_id}/runs/wait", json={"assistant_id": "ticker", "input": {}}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    location = response.headers["location"]
    assert location.startswith(f"/threads/{thread_id}/runs/") and location.endswith("/join")
    assert response.headers["content-location"] == location.removesuffix("/join")
    assert response.content.startswith(b"\n")  # a keepalive per heartbeat while it ran
    assert json.loads(response.content)["ticks"] == [str(i) for i in range(10)]


def test_a_wait_that_settles_within_a_heartbeat_is_one_plain_body(url: str) -> None:
    thread_id = get_sync_client(url=url).threads.create()["thread_id"]
    with httpx.Client(base_url=url, timeout=10) as http:
        response = http.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "approval", "input": {"draft": "hi"}},
        )
    assert response.status_code == 200
    assert "transfer-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    body = json.loads(response.content)
    assert body["draft"] == "hi!" and "__interrupt__" in body


@pytest.mark.parametrize("keepalives", [0, 1], ids=["before-headers", "after-a-keepalive"])
def test_wait_with_on_disconnect_cancel_stops_the_run(url: str, keepalives: int) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    body = {"assistant_id": "ticker", "input": {}, "on_disconnect": "cancel"}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10, read=0.1)) as http:
        if keepalives == 0:
            # The heartbeat is 0.3 s: nothing has been sent when the client leaves.
            with pytest.raises(httpx.ReadTimeout):
                http.post(f"/threads/{thread_id}/runs/wait", json=body)
        else:
            http.timeout = httpx.Timeout(10)
            with http.stream("POST", f"/threads/{thread_id}/runs/wait", json=body) as response:
                assert next(response.iter_raw()) == b"\n"  # headers, then a keepalive
    runs = client.runs.list(thread_id)
    assert len(runs) == 1
    eventually(
        lambda: client.runs.get(thread_id, runs[0]["run_id"])["status"] == "interrupted",
        what="the run stopping after its waiting client left",
    )


def test_on_disconnect_cancel_stops_the_run(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    body = {
        "assistant_id": "ticker",
        "input": {},
        "stream_mode": ["values"],
        "on_disconnect": "cancel",
    }
    with httpx.Client(base_url=url, timeout=10) as http:
        with http.stream("POST", f"/threads/{thread_id}/runs/stream", json=body) as response:
            run_url = response.headers["content-location"]
            for frame in iter_sse(response):
                if isinstance(frame, SSEEvent) and frame.event == "values":
                    break  # leave while it runs
        run_id = run_url.rsplit("/", 1)[1]
        eventually(
            lambda: client.runs.get(thread_id, run_id)["status"] == "interrupted",
            what="the run stopping after its client left",
        )


def test_after_seconds_delays_the_start(url: str) -> None:
    client = get_sync_client(url=url)
    thread_id = client.threads.create()["thread_id"]
    run = client.runs.create(thread_id, "approval", input={"draft": "later"}, after_seconds=0.5)
    assert client.runs.get(thread_id, run["run_id"])["status"] == "pending"
    assert client.runs.join(thread_id, run["run_id"])["draft"] == "later!"
    with httpx.Client(base_url=url, timeout=10) as http:
        status = http.get(f"/api/v1/execute/{run['run_id']}/status").json()
    waited = dt.datetime.fromisoformat(status["started_at"]) - dt.datetime.fromisoformat(
        status["created_at"]
    )
    assert waited.total_seconds() >= 0.5


def test_webhook_must_be_an_absolute_http_url(url: str) -> None:
    thread_id = get_sync_client(url=url).threads.create()["thread_id"]
    with httpx.Client(base_url=url, timeout=10) as http:
        for bad in ("/relative", "ftp://example.com/x", "http://"):
            body = {"assistant_id": "approval", "input": {"draft": "x"}, "webhook": bad}
            response = http.post(f"/threads/{thread_id}/runs", json=body)
            assert response.status_code == 422, bad


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.bodies
    finally:
        server.shutdown()
        server.server_close()


async def protocol_on(tmp_path: Path, **services: Any) -> AsyncIterator[AgentProtocol]:
    async with Runtime(
        tmp_path / "runs.db", services=services, config=RuntimeConfig(shutdown_grace_seconds=0.2)
    ) as rt:
        for workflow in (APPROVAL, TICKER):
            await rt.save_workflow(workflow)
        protocol = AgentProtocol(rt)
        try:
            yield protocol
        finally:
            await protocol.aclose()


async def test_webhook_posts_the_run_when_it_ends(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    hook, bodies = receiver
    async for protocol in protocol_on(tmp_path, http={"allow_private": True}):
        body = RunCreate(assistant_id="approval", input={"draft": "hook"}, webhook=hook)
        started = await protocol.runs.start(None, body, "create")
        protocol.background.finish(started, body.webhook)
        assert await protocol.background.final_values(started.record.run_id) is not None
    [sent] = bodies
    assert sent["run_id"] == started.record.run_id and sent["status"] == "interrupted"
    assert sent["values"]["draft"] == "hook!" and "__interrupt__" in sent["values"]
    assert sent["webhook_sent_at"] and sent["run_started_at"]


async def test_webhook_to_a_private_address_is_refused_by_default(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    hook, bodies = receiver
    async for protocol in protocol_on(tmp_path):
        body = RunCreate(assistant_id="approval", input={"draft": "hook"}, webhook=hook)
        started = await protocol.runs.start(None, body, "create")
        protocol.background.finish(started, body.webhook)
        await protocol.background.final_values(started.record.run_id)
    assert bodies == []  # SSRF check: loopback is not a public address


def test_threads_runs_and_streams_survive_a_server_restart(tmp_path: Path) -> None:
    config = RuntimeConfig(
        db=tmp_path / "runs.db",
        workflows=write_workflows(tmp_path / "workflows"),
        heartbeat_seconds=0.3,
        shutdown_grace_seconds=0.5,
    )
    with live_server(config) as url:
        client = get_sync_client(url=url)
        thread_id = client.threads.create()["thread_id"]
        run = client.runs.create(thread_id, "ticker", input={}, stream_mode=["values"])
        seen = []
        for part in client.runs.join_stream(thread_id, run["run_id"], last_event_id="0"):
            seen.append(part)
            if part.event == "values" and len(part.data.get("ticks", [])) >= 2:
                break
        last = seen[-1].id
    # The shutdown drained the run at a superstep boundary; the next process resumes it.
    with live_server(config) as url:
        client = get_sync_client(url=url)
        rest = list(client.runs.join_stream(thread_id, run["run_id"], last_event_id=last))
        assert rest[-1].event == "end" and rest[-1].data["status"] == "success"
        assert int(rest[0].id) > int(last)
        ticks = [p.data["ticks"] for p in rest if p.event == "values"]
        assert ticks[-1] == [str(i) for i in range(10)]
        everything = list(client.runs.join_stream(thread_id, run["run_id"], last_event_id="0"))
        replayed = [p.id for p in everything if p.id is not None]
        assert [p.id for p in seen] == replayed[: len(seen)]  # the same ids, before and after
        # The thread survived the restart too: its record, state and runs.
        thread = client.threads.get(thread_id)
        assert thread["status"] == "idle" and thread["metadata"]["graph_id"] == "ticker"
        assert client.threads.get_state(thread_id)["values"]["ticks"][-1] == "9"
        assert [r["run_id"] for r in client.runs.list(thread_id)] == [run["run_id"]]
