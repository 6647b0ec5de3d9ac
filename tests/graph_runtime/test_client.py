"""``Client`` and ``AsyncClient`` against the real server on loopback (STYLE.md §24).

Reconnection is staged with a TCP proxy the test controls: it cuts connections mid-stream
(RST or FIN), or points at a restarted server on the same database. A few edge cases the server
cannot be made to produce on demand (a clean early close, ``retry:``, a proxy's HTML error)
use ``httpx.MockTransport``.
"""

from __future__ import annotations

import re
import selectors
import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from helpers.live_server import live_server
from helpers.waits import eventually
from helpers.workflows import SIX, SLOW, chain

from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import (
    ConflictError,
    GraphRuntimeError,
    InputValidationError,
    InvalidTransition,
    RunNotFound,
    StoreError,
    WorkflowNotFound,
    WorkflowValidationError,
)
from graph_runtime.models import Event, EventType, TaskRequest, TaskStatus, TaskStepResult
from graph_runtime.sdk import AsyncClient, Client, Workflow
from graph_runtime.sdk import client as client_module

BAD = {
    "schema": "graph-runtime/workflow/v1",
    "id": "bad",
    "nodes": [{"id": "start", "type": "input", "config": {}}, {"id": "x", "type": "nope"}],
    "edges": [{"from": "start", "to": "x"}, {"from": "x", "to": "ghost"}],
}


def config(db: Path) -> RuntimeConfig:
    return RuntimeConfig(db=db, shutdown_grace_seconds=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_server(config(tmp_path_factory.mktemp("client") / "runs.db")) as url:
        with Client(url) as admin:
            for document in (SIX, SLOW, chain("drip", 3, seconds=0.1)):
                admin.save_workflow(document)
        yield url


@pytest.fixture
def client(server: str) -> Iterator[Client]:
    with Client(server, timeout=10) as c:
        yield c


@pytest.fixture
async def aclient(server: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server, timeout=10) as c:
        yield c


class CuttableProxy:
    """A loopback TCP proxy whose connections the test cuts; it records what clients sent.

    One thread owns every socket (a selector loop), so a cut never closes a socket another
    thread is blocked on, and a reset really leaves as an RST.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()
        self._cuts: list[tuple[bool, threading.Event]] = []
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="cut-proxy", daemon=True)
        self._thread.start()

    def cut(self, *, reset: bool) -> None:
        """Close every open connection now: RST if ``reset``, else FIN."""
        done = threading.Event()
        with self._lock:
            self._cuts.append((reset, done))
        assert done.wait(5), "the proxy did not cut"

    def event_requests(self) -> list[dict[str, str]]:
        """The head of every events request that went through, oldest first."""
        with self._lock:
            sent = bytes(self._sent)
        heads = re.findall(rb"GET (\S+/events\S*) HTTP/1.1\r\n(.*?)\r\n\r\n", sent, re.S)
        return [
            {"target": target.decode()}
            | {k.lower(): v for k, _, v in (h.partition(": ") for h in head.decode().split("\r\n"))}
            for target, head in heads
        ]

    def close(self) -> None:
        self.cut(reset=False)
        self._running = False
        self._thread.join(5)
        self._selector.close()
        self._listener.close()

    def _loop(self) -> None:
        while self._running:
            for key, _ in self._selector.select(0.01):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                elif sock in self._peer:  # not dropped earlier in this round
                    self._forward(sock)
            with self._lock:
                cuts, self._cuts = self._cuts, []
            for reset, done in cuts:
                for client in list(self._clients):
                    self._drop(client, reset=reset)
                done.set()

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        url = httpx.URL(self.upstream)
        try:
            upstream = socket.create_connection((url.host, url.port or 80), timeout=1)
        except OSError:
            client.close()  # the server is down (restarting): the client sees a drop
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            self._selector.register(sock, selectors.EVENT_READ)
        self._peer[client], self._peer[upstream] = upstream, client
        self._clients.add(client)

    def _forward(self, sock: socket.socket) -> None:
        client = sock if sock in self._clients else self._peer[sock]
        try:
            data = sock.recv(65536)
            if data:
                if sock is client:
                    with self._lock:
                        self._sent += data
                self._peer[sock].sendall(data)
                return
        except OSError:
            pass
        self._drop(client, reset=False)

    def _drop(self, client: socket.socket, *, reset: bool) -> None:
        upstream = self._peer.pop(client)
        del self._peer[upstream]
        self._clients.discard(client)
        for sock in (client, upstream):
            self._selector.unregister(sock)
        if reset:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        upstream.close()


@pytest.fixture
def proxy(server: str) -> Iterator[CuttableProxy]:
    p = CuttableProxy(server)
    yield p
    p.close()


def assert_complete(events: list[Event], status: str = "completed") -> None:
    """Ids 1..N with no gap and no duplicate, typed, ending with the `end` event."""
    assert all(isinstance(e, Event) and isinstance(e.type, EventType) for e in events)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type is EventType.END
    assert events[-1].data["status"] == status
    assert sum(e.type is EventType.END for e in events) == 1


# -- every method, sync and async ---------------------------------------------------------------


def test_sdk_exports_are_sorted_and_lazy() -> None:
    import graph_runtime.sdk as sdk

    assert sdk.__all__ == sorted(sdk.__all__)
    assert {"AsyncClient", "Client"} <= set(sdk.__all__) <= set(dir(sdk))
    assert sdk.Client is Client and sdk.AsyncClient is AsyncClient


def test_workflows_and_health(client: Client) -> None:
    assert client.health().status == "ok"
    first = client.save_workflow(chain("wf-sync", 1))
    assert (first.workflow_id, first.version) == ("wf-sync", 1)
    assert client.save_workflow(chain("wf-sync", 1)).version == 1  # unchanged: same version
    builder = Workflow.from_dict(chain("wf-sync", 2))
    second = client.save_workflow(builder, workflow_id="wf-sync")
    assert second.version == 2
    assert client.get_workflow("wf-sync").version == 2
    old = client.get_workflow("wf-sync", version=1)
    assert old.version == 1 and old.definition is not None
    assert "wf-sync" in {w.workflow_id for w in client.list_workflows()}
    assert client.validate(SIX).valid
    report = client.validate(BAD)
    assert not report.valid
    assert {e.path for e in report.errors} >= {"/nodes/1/type"}


async def test_workflows_and_health_async(aclient: AsyncClient) -> None:
    assert (await aclient.health()).status == "ok"
    stored = await aclient.save_workflow(chain("wf-async", 1))
    assert stored.version == 1
    assert (await aclient.get_workflow("wf-async", version=1)).content_hash == stored.content_hash
    assert "wf-async" in {w.workflow_id for w in await aclient.list_workflows()}
    assert not (await aclient.validate(BAD)).valid


def test_run_stream_wait_steps_logs(client: Client) -> None:
    run = client.submit("drip", {"tag": "s"}, execution_id="sync-run-1", priority=7)
    assert run.execution_id == "sync-run-1" and run.workflow_id == "drip"
    assert run.status in {TaskStatus.PENDING, TaskStatus.RUNNING} and run.priority == 7
    again = client.submit("drip", {"tag": "s"}, execution_id="sync-run-1")  # idempotent
    assert again.created_at == run.created_at
    events = list(client.stream(run.execution_id))
    assert_complete(events)
    assert [e.data["step"] for e in events if e.type is EventType.STEP][:2] == ["start", "w0"]
    done = client.wait(run.execution_id, timeout=5)
    assert done.status is TaskStatus.COMPLETED and done.result == {"count": 3}
    assert client.status(run.execution_id) == done
    steps = client.steps(run.execution_id)
    assert all(isinstance(s, TaskStepResult) for s in steps)
    assert [s.step for s in steps][:3] == ["start", "w0", "t0"]
    assert client.logs(run.execution_id, level="info", limit=10, after=0) == []
    assert [e.id for e in client.stream(run.execution_id, after=len(events) - 2)] == [
        len(events) - 1,
        len(events),
    ]


async def test_run_stream_wait_steps_logs_async(aclient: AsyncClient) -> None:
    run = await aclient.submit("six", definition=SIX, metadata={"who": "test"}, timeout_seconds=30)
    events = [e async for e in aclient.stream(run.execution_id)]
    assert_complete(events)
    done = await aclient.wait(run.execution_id, timeout=5)
    assert done.result == {"trail": ["a", "b", "c", "d"], "n": 4}
    assert len(await aclient.steps(run.execution_id)) == 6
    assert await aclient.logs(run.execution_id) == []
    assert (await aclient.status(run.execution_id)).status is TaskStatus.COMPLETED


def first_step(events: Iterator[Event]) -> None:
    """Read until the run has a step recorded (it is running), then let go of the stream."""
    for event in events:
        if event.type is EventType.STEP:
            return


def test_pause_resume_stop_and_late_control(client: Client) -> None:
    run = client.submit("drip", {})
    first_step(client.stream(run.execution_id))
    client.pause(run.execution_id)
    assert client.wait(run.execution_id, timeout=5).status is TaskStatus.PAUSED
    client.resume(run.execution_id)
    assert client.wait(run.execution_id, timeout=5).status is TaskStatus.COMPLETED
    with pytest.raises(InvalidTransition) as caught:  # 409: too late
        client.pause(run.execution_id)
    assert (caught.value.current, caught.value.target) == (TaskStatus.COMPLETED, TaskStatus.PAUSED)
    assert caught.value.http_status == 409

    slow = client.submit("slow", {"seconds": 30})
    first_step(client.stream(slow.execution_id))
    client.stop(slow.execution_id)
    assert client.wait(slow.execution_id, timeout=5).status is TaskStatus.STOPPED
    with pytest.raises((ConflictError, InvalidTransition)) as late:
        client.resume(slow.execution_id, value="late")
    assert late.value.http_status == 409


async def test_pause_resume_stop_async(aclient: AsyncClient) -> None:
    run = await aclient.submit("drip", {})
    async for event in aclient.stream(run.execution_id):
        if event.type is EventType.STEP:
            break
    await aclient.pause(run.execution_id)
    assert (await aclient.wait(run.execution_id, timeout=5)).status is TaskStatus.PAUSED
    await aclient.resume(run.execution_id, value=None)
    assert (await aclient.wait(run.execution_id, timeout=5)).status is TaskStatus.COMPLETED
    slow = await aclient.submit("slow", {"seconds": 30})
    async for event in aclient.stream(slow.execution_id):
        if event.type is EventType.STEP:
            break
    await aclient.stop(slow.execution_id)
    assert (await aclient.wait(slow.execution_id, timeout=5)).status is TaskStatus.STOPPED
    # 409 either way: which class depends on whether the worker has let go of the run yet.
    with pytest.raises((ConflictError, InvalidTransition)):
        await aclient.stop(slow.execution_id)


def test_wait_times_out_and_falls_back_to_polling(server: str, client: Client) -> None:
    slow = client.submit("slow", {"seconds": 30})
    with pytest.raises(TimeoutError):
        client.wait(slow.execution_id, timeout=0.3)
    client.stop(slow.execution_id)

    class NoEvents(httpx.BaseTransport):  # a server (or proxy) without the SSE endpoint
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/events"):
                return httpx.Response(404, json={"detail": "Not Found", "code": "E001"})
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    with Client(server, transport=NoEvents()) as polling:
        run = polling.submit("drip", {})
        assert polling.wait(run.execution_id, timeout=5).status is TaskStatus.COMPLETED


def test_tasks(client: Client) -> None:
    task = client.create_task(TaskRequest(task_type="drip", description="sync", priority=9))
    assert client.get_task(task.task_id).task_id == task.task_id
    assert client.wait(task.task_id, timeout=5).status is TaskStatus.COMPLETED
    assert client.get_task(task.task_id).result == {"count": 3}
    slow = client.create_task(task_type="slow", parameters={"seconds": 30})
    eventually(lambda: client.get_task(slow.task_id).status is TaskStatus.RUNNING)
    assert client.delete_task(slow.task_id).status in {TaskStatus.STOPPING, TaskStatus.STOPPED}
    assert client.wait(slow.task_id, timeout=5).status is TaskStatus.STOPPED
    with pytest.raises(TypeError):
        client.create_task(TaskRequest(task_type="drip"), priority=3)


async def test_tasks_async(aclient: AsyncClient) -> None:
    task = await aclient.create_task(task_type="six", parameters={})
    assert (await aclient.wait(task.task_id, timeout=5)).status is TaskStatus.COMPLETED
    assert (await aclient.get_task(task.task_id)).status is TaskStatus.COMPLETED
    with pytest.raises(ConflictError, match="already ended"):
        await aclient.delete_task(task.task_id)


# -- errors -------------------------------------------------------------------------------------


def test_errors_map_to_our_exceptions(client: Client) -> None:
    for call in (
        lambda: client.status("nope"),
        lambda: client.steps("nope"),
        lambda: client.logs("nope"),
        lambda: client.pause("nope"),
        lambda: client.get_task("nope"),
        lambda: list(client.stream("nope")),
    ):
        with pytest.raises(RunNotFound):
            call()
    with pytest.raises(WorkflowNotFound):
        client.get_workflow("nope")
    with pytest.raises(WorkflowNotFound):
        client.submit("never-stored", {})
    with pytest.raises(WorkflowValidationError) as bad_doc:
        client.save_workflow(BAD)
    assert "/nodes/1/type" in {p.path for p in bad_doc.value.problems}
    with pytest.raises(WorkflowValidationError) as bad_def:
        client.submit("bad", definition=BAD)
    assert all(p.path.startswith("/definition/") for p in bad_def.value.problems)
    with pytest.raises(InputValidationError) as server_side:  # 422 from the server
        client.logs("sync-run-1", limit=0)
    assert [p.path for p in server_side.value.problems] == ["/limit"]
    with pytest.raises(InputValidationError) as local:  # caught before sending
        client.submit("six", priority=11)
    assert [p.path for p in local.value.problems] == ["/priority"]


async def test_errors_map_to_our_exceptions_async(aclient: AsyncClient) -> None:
    with pytest.raises(RunNotFound):
        await aclient.status("nope")
    with pytest.raises(RunNotFound):
        [e async for e in aclient.stream("nope")]
    with pytest.raises(WorkflowValidationError) as caught:
        await aclient.save_workflow(BAD)
    assert caught.value.path.startswith("/nodes/")


def test_error_bodies_that_are_not_ours() -> None:
    replies = {
        "/healthz": httpx.Response(
            503, json={"status": "degraded", "active_runs": 0, "queue_depth": 0, "version": "0"}
        ),
        "/api/v1/execute/a/status": httpx.Response(502, text="<html>Bad Gateway</html>"),
        "/api/v1/execute/b/status": httpx.Response(503, text="maintenance"),
        "/api/v1/execute/c/status": httpx.Response(404, text="no"),
        "/api/v1/execute/d/status": httpx.Response(200, json={"not": "a status"}),
    }
    transport = httpx.MockTransport(lambda request: replies[request.url.path])
    with Client("http://test", transport=transport, token="s3cret") as c:
        assert c.health().status == "degraded"
        with pytest.raises(GraphRuntimeError, match="HTTP 502 Bad Gateway: <html>"):
            c.status("a")
        with pytest.raises(StoreError, match="maintenance"):
            c.status("b")
        with pytest.raises(RunNotFound):
            c.status("c")
        with pytest.raises(GraphRuntimeError, match="not a ExecutionStatus"):
            c.status("d")
        assert c._status_call("x").request.headers["Authorization"] == "Bearer s3cret"


# -- reconnection -------------------------------------------------------------------------------


def test_stream_resumes_with_last_event_id_after_resets(
    client: Client, proxy: CuttableProxy
) -> None:
    # Cuts land right after a `wait` step, so the run still has 0.2 s to go and the `end`
    # event cannot already sit in the client's buffer: each cut forces a reconnection.
    client.save_workflow(chain("drip4", 4, seconds=0.2))
    run = client.submit("drip4", {})
    events: list[Event] = []
    cut_at: list[int] = []
    with Client(proxy.url) as through_proxy:
        through_proxy.reconnect_delay = 0.05
        for event in through_proxy.stream(run.execution_id):
            events.append(event)
            if event.type is EventType.STEP and event.data["step"] in ("w0", "w2"):
                cut_at.append(event.id)
                proxy.cut(reset=True)
    assert_complete(events)
    requests = proxy.event_requests()
    assert len(requests) == 3
    assert "last-event-id" not in requests[0]
    resumed = [int(r["last-event-id"]) for r in requests[1:]]
    # The id of the cut event, or of an instant `t` step that arrived in the same read.
    assert cut_at[0] <= resumed[0] <= cut_at[0] + 1 < cut_at[1] <= resumed[1] <= cut_at[1] + 1


async def test_async_stream_resumes_after_the_server_side_closes(
    client: Client, proxy: CuttableProxy
) -> None:
    run = client.submit("drip", {})
    events: list[Event] = []
    async with AsyncClient(proxy.url) as through_proxy:
        async for event in through_proxy.stream(run.execution_id, after=1):
            events.append(event)
            if len(events) == 2:
                proxy.cut(reset=False)
    assert [e.id for e in events] == list(range(2, len(events) + 2))
    assert events[-1].type is EventType.END
    requests = proxy.event_requests()
    assert "after=1" in requests[0]["target"] and int(requests[1]["last-event-id"]) >= 3


def test_stream_survives_a_server_restart(tmp_path: Path) -> None:
    settings = config(tmp_path / "runs.db")
    with ExitStack() as stack:
        first = ExitStack()
        proxy = CuttableProxy(first.enter_context(live_server(settings)))
        stack.callback(proxy.close)
        client = stack.enter_context(Client(proxy.url))
        client.save_workflow(chain("restart", 4, seconds=0.15))
        run = client.submit("restart", {})
        events: list[Event] = []
        for event in client.stream(run.execution_id):
            events.append(event)
            if len(events) == 4:
                first.close()  # drains the run at its next step; ends the stream cleanly
                proxy.upstream = stack.enter_context(live_server(settings))
    assert_complete(events)
    assert events[-2].data["new"] == "completed"
    requests = proxy.event_requests()
    assert len(requests) >= 2 and int(requests[1]["last-event-id"]) >= 4


def sse(*events: Event, retry: int | None = None) -> bytes:
    head = f"retry: {retry}\n\n" if retry is not None else ""
    frames = [f"id: {e.id}\nevent: {e.type.value}\ndata: {e.model_dump_json()}\n\n" for e in events]
    return (head + ": heartbeat\n\n" + "".join(frames)).encode()


def ev(i: int, type: EventType = EventType.STEP) -> Event:
    return Event(run_id="r", id=i, type=type, data={"status": "completed"})


def test_clean_early_close_replay_overlap_and_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=delays.append))
    seen: list[httpx.Request] = []
    bodies = iter(
        [
            sse(ev(1), ev(2), retry=40),  # closes cleanly before `end`
            sse(ev(2), ev(3)),  # replays 2 (an overlap), then closes again
            sse(ev(3), ev(4), ev(5, EventType.END), ev(6)),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=next(bodies))

    with Client("http://test", transport=httpx.MockTransport(handler)) as c:
        assert [e.id for e in c.stream("r")] == [1, 2, 3, 4, 5]
    assert [r.headers.get("Last-Event-ID") for r in seen] == [None, "2", "3"]
    assert delays == [0.04, 0.04]  # the server's retry:, reset after every connection with news


def test_reconnects_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=delays.append))
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, json={"detail": "db down", "code": "E006"})
        raise httpx.ConnectError("refused", request=request)

    with Client("http://test", transport=httpx.MockTransport(handler)) as c:
        c.max_reconnects = 3
        with pytest.raises(httpx.ConnectError):
            list(c.stream("r"))
    assert len(calls) == 4
    assert delays == [0.25, 0.5, 1.0]  # doubling backoff without a server retry:
