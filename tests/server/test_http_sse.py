from __future__ import annotations

import socket
import time
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from helpers.live_server import live_server
from helpers.sse import SSEComment, SSEEvent, SSEParser, iter_sse
from helpers.waits import eventually, wait_for_status
from helpers.workflows import DRIP, SLOW, chain

from graph_runtime.config import RuntimeConfig

API = "/api/v1/execute"


def events(client: httpx.Client, run_id: str, **headers: str) -> list[SSEEvent]:
    """Every event of a finished run's stream (the stream ends by itself after `end`)."""
    with client.stream("GET", f"{API}/{run_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        return [e for e in iter_sse(stream) if isinstance(e, SSEEvent)]


def ids(frames: list[SSEEvent]) -> list[int]:
    return [int(f.id or 0) for f in frames]


def open_streams(client: httpx.Client) -> int:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("graph_runtime_sse_streams "):
            return int(float(line.split()[1]))
    raise AssertionError("no graph_runtime_sse_streams metric")


def start(client: httpx.Client, run_id: str, workflow: dict[str, Any], **input_data: Any) -> None:
    assert client.post("/api/v1/workflows", json=workflow).status_code in (200, 201)
    body = {"execution_id": run_id, "workflow_id": workflow["id"], "input_data": input_data}
    assert client.post(API, json=body).status_code == 202


def test_frames_carry_the_whole_event_and_the_stream_ends_after_end(client: httpx.Client) -> None:
    start(client, "f", DRIP)
    frames = events(client, "f")
    assert ids(frames) == list(range(1, len(frames) + 1))
    for frame in frames:
        event = frame.json()
        assert event["run_id"] == "f" and event["id"] == int(frame.id or 0)
        assert event["type"] == frame.event and "created_at" in event
    assert frames[0].event == "status" and frames[0].json()["data"]["new"] == "pending"
    assert frames[-1].event == "end" and frames[-1].json()["data"]["status"] == "completed"
    assert {"status", "step", "end"} <= {f.event for f in frames}


def test_reconnect_with_last_event_id_gets_exactly_the_rest(client: httpx.Client) -> None:
    start(client, "r", DRIP)
    k = 4
    with client.stream("GET", f"{API}/r/events") as stream:
        seen = []
        for item in iter_sse(stream):
            if isinstance(item, SSEEvent):
                seen.append(item)
                if len(seen) == k:
                    break  # disconnect in the middle of the run
    assert client.get(f"{API}/r/status").json()["status"] == "running"
    rest = events(client, "r", **{"Last-Event-ID": str(k)})
    full = events(client, "r")
    assert ids(seen) + ids(rest) == ids(full) == list(range(1, len(full) + 1))
    assert [f.data for f in seen + rest] == [f.data for f in full]
    # `?after=` does the same; the header wins over it (a browser keeps the first URL).
    with client.stream("GET", f"{API}/r/events", params={"after": len(full) - 2}) as stream:
        assert ids([e for e in iter_sse(stream) if isinstance(e, SSEEvent)]) == ids(full)[-2:]
    with client.stream(
        "GET", f"{API}/r/events", params={"after": 1}, headers={"Last-Event-ID": str(len(full) - 1)}
    ) as stream:
        assert ids([e for e in iter_sse(stream) if isinstance(e, SSEEvent)]) == ids(full)[-1:]
    assert events(client, "r", **{"Last-Event-ID": str(len(full))}) == []  # nothing after end


@pytest.mark.parametrize(
    "value", [b"abc", b"-1", b"1.5", b"99999999999999999999999", "١٢".encode()]
)
def test_a_bad_last_event_id_is_422(client: httpx.Client, value: bytes) -> None:
    start(client, "bad", SLOW, seconds=0)
    r = client.get(f"{API}/bad/events", headers={b"Last-Event-ID": value})
    assert r.status_code == 422
    assert r.json()["code"] == "E001" and r.json()["errors"][0]["path"] == "/Last-Event-ID"
    assert client.get(f"{API}/bad/events", params={"after": -1}).status_code == 422


def test_reconnect_after_a_server_restart(config: RuntimeConfig) -> None:
    workflow = chain("steady", 4, seconds=0.2)
    with live_server(config) as url, httpx.Client(base_url=url, timeout=10) as client:
        start(client, "rr", workflow)
        parser_ids: list[int] = []
        with client.stream("GET", f"{API}/rr/events") as stream:
            for item in iter_sse(stream):
                if isinstance(item, SSEEvent):
                    parser_ids.append(int(item.id or 0))
                    if item.event == "step" and item.json()["data"]["step"] == "w0":
                        break
        k = parser_ids[-1]
    # The server drained the run at a superstep boundary and exited; a new one resumes it.
    with live_server(config) as url, httpx.Client(base_url=url, timeout=10) as client:
        rest = events(client, "rr", **{"Last-Event-ID": str(k)})
        full = events(client, "rr")
    assert parser_ids + ids(rest) == ids(full) == list(range(1, len(full) + 1))
    assert rest[-1].event == "end" and rest[-1].json()["data"]["status"] == "completed"
    statuses = [f.json()["data"]["new"] for f in rest if f.event == "status"]
    assert statuses == ["completed"], statuses  # drained, resumed: never called crashed
    assert any(
        "drained at shutdown" in f.json()["data"]["message"] for f in rest if f.event == "log"
    )


def test_shutdown_ends_open_streams_so_clients_reconnect(config: RuntimeConfig) -> None:
    # The client and its stream outlive the server, like a real client's.
    with httpx.Client(timeout=10) as client, ExitStack() as streams:
        with live_server(config) as url:
            client.base_url = httpx.URL(url)
            start(client, "sd", SLOW, seconds=30)
            wait_for_status(client, "sd", "running")
            stream = streams.enter_context(client.stream("GET", f"{API}/sd/events"))
            items = iter_sse(stream)
            first = next(items)
            assert isinstance(first, SSEEvent) and first.id == "1"
            stopping = time.monotonic()
        # The server stopped; its stream ended cleanly (a complete chunked body, no reset)
        # at shutdown, not at the end of the run, and did not hold the shutdown up.
        assert time.monotonic() - stopping < 5
        rest = list(items)
        assert not any(isinstance(i, SSEEvent) and i.event == "end" for i in rest)


def test_heartbeats_keep_an_idle_stream_open(config: RuntimeConfig) -> None:
    with (
        live_server(config.model_copy(update={"heartbeat_seconds": 0.1})) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        start(client, "hb", SLOW, seconds=30)
        wait_for_status(client, "hb", "running")
        heartbeats = 0
        with client.stream("GET", f"{API}/hb/events") as stream:
            for item in iter_sse(stream):
                if isinstance(item, SSEComment):
                    assert item.text == "heartbeat"
                    heartbeats += 1
                    if heartbeats == 2:
                        assert client.post(f"{API}/hb/stop").status_code == 202
                elif item.event == "end":
                    break
        assert heartbeats >= 2


def test_a_disconnected_client_leaves_nothing_behind(client: httpx.Client) -> None:
    start(client, "d", SLOW, seconds=30)
    wait_for_status(client, "d", "running")
    for _ in range(3):
        with client.stream("GET", f"{API}/d/events") as stream:
            items = iter_sse(stream)  # kept: dropping the iterator would close the connection
            assert isinstance(next(items), SSEEvent)
            assert open_streams(client) == 1
    eventually(lambda: open_streams(client) == 0, what="the streams closing")
    client.post(f"{API}/d/stop")


def _read_raw_sse(sock: socket.socket) -> list[SSEEvent]:
    """Read a chunked SSE response off a raw socket until it ends; return its events."""
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed the connection mid-response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    text = b""
    while body:
        size, _, body = body.partition(b"\r\n")
        n = int(size, 16)
        text, body = text + body[:n], body[n + 2 :]
    parser = SSEParser()
    frames = [parser.feed(line) for line in text.decode().splitlines()]
    return [f for f in frames if isinstance(f, SSEEvent)]


def test_a_frozen_client_does_not_block_the_run_and_is_dropped(config: RuntimeConfig) -> None:
    # A small send buffer on the server and a small receive window on the client: a client
    # that stops reading blocks the server's writes after ~100 kB. The run then publishes
    # more than sse_queue_size events; the bus drops the client instead of waiting for it.
    settings = config.model_copy(update={"sse_queue_size": 10, "max_body_bytes": 200_000})
    workflow = chain("big", 20, copy="blob")
    with (
        live_server(settings, send_buffer=8192) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        start(client, "fz", workflow, blob="x" * 10_000)
        frozen = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
        frozen.settimeout(10)
        with frozen:
            frozen.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            frozen.sendall(f"GET {API}/fz/events HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            started = time.monotonic()
            wait_for_status(client, "fz", "completed", timeout=10)
            assert time.monotonic() - started < 5
            got = _read_raw_sse(frozen)  # now read: the stream ends early (dropped)
        full = events(client, "fz")
        assert 0 < len(got) < len(full) and got[-1].event != "end"
        assert ids(got) == list(range(1, len(got) + 1))
        rest = events(client, "fz", **{"Last-Event-ID": got[-1].id or ""})
        assert ids(got) + ids(rest) == ids(full) and rest[-1].event == "end"
        eventually(lambda: open_streams(client) == 0, what="the streams closing")


def test_events_of_an_unknown_run_are_404(client: httpx.Client) -> None:
    r = client.get(f"{API}/nobody/events")
    assert r.status_code == 404 and r.json()["code"] == "E001"
    assert client.get(f"{API}/b%C3%A4d/events").status_code == 422
