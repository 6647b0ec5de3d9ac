"""A loopback HTTP API that counts calls per path, for the fault suite's side-effect checks.

::

    with CounterStub() as stub:
        stub.fail("/r/flaky", times=2)   # the first 2 calls answer 500, then 200
        stub.hold("/r/slow")             # calls block until stub.release("/r/slow")
        url = stub.url("/r/flaky")
        ...
        assert stub.count("/r/flaky") == 3

Every call (``GET``/``POST``) is counted on arrival, before any hold, delay or failure, so a
count of 1 on a held path means "the request is in flight now". A 200 answers
``{"node": <last path segment>}``: the same for every call, so a re-sent request does not
change a run's result. It runs in the test process on ``127.0.0.1`` with an ephemeral port.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["CounterStub"]

HOLD_LIMIT = 60.0  # a held call never outlives a test by much


class CounterStub:
    """Counts calls per path; paths can be made to fail, to wait, or to block until released."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._calls: Counter[str] = Counter()
        self._times: defaultdict[str, list[float]] = defaultdict(list)
        self._failures: dict[str, tuple[int | None, int]] = {}
        self._delays: dict[str, float] = {}
        self._gates: dict[str, threading.Event] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration --------------------------------------------------------------------------

    def fail(self, path: str, times: int | None = None, status: int = 500) -> None:
        """Answer ``status`` to the first ``times`` calls of ``path`` (None: to every call)."""
        with self._lock:
            self._failures[path] = (times, status)

    def delay(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering each call of ``path``."""
        with self._lock:
            self._delays[path] = seconds

    def hold(self, path: str) -> None:
        """Block every call of ``path`` until :meth:`release`."""
        with self._lock:
            self._gates[path] = threading.Event()

    def release(self, path: str) -> None:
        """Let held calls of ``path`` (and later ones) through."""
        with self._lock:
            gate = self._gates.pop(path, None)
        if gate is not None:
            gate.set()

    # -- observation ----------------------------------------------------------------------------

    def url(self, path: str = "") -> str:
        """The absolute URL of ``path`` on this stub."""
        assert self._server is not None, "the stub is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def count(self, path: str) -> int:
        """Calls of ``path`` so far."""
        with self._lock:
            return self._calls[path]

    def counts(self, prefix: str = "") -> dict[str, int]:
        """Calls per path, for the paths that start with ``prefix``."""
        with self._lock:
            return {p: n for p, n in self._calls.items() if p.startswith(prefix)}

    def times(self, path: str) -> list[float]:
        """``time.monotonic()`` at the arrival of each call of ``path``."""
        with self._lock:
            return list(self._times[path])

    def wait_calls(self, path: str, n: int, timeout: float = 20.0) -> None:
        """Block until ``path`` was called ``n`` times."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._calls[path] >= n, timeout):
                raise AssertionError(
                    f"{path} was called {self._calls[path]} times, not {n}, within {timeout} s"
                )

    # -- serving --------------------------------------------------------------------------------

    def _arrive(self, path: str) -> tuple[threading.Event | None, float, int | None]:
        """Count the call; what to do with it: (gate, delay, failure status or None)."""
        with self._lock:
            self._calls[path] += 1
            self._times[path].append(time.monotonic())
            self._lock.notify_all()
            status: int | None = None
            if path in self._failures:
                left, code = self._failures[path]
                if left is None:
                    status = code
                elif left > 0:
                    self._failures[path] = (left - 1, code)
                    status = code
            return self._gates.get(path), self._delays.get(path, 0.0), status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                gate, delay, status = stub._arrive(path)
                if gate is not None:
                    gate.wait(HOLD_LIMIT)
                if delay:
                    time.sleep(delay)
                if status is not None:
                    body, code = b"failing on purpose", status
                    kind = "text/plain"
                else:
                    body = json.dumps({"node": path.rsplit("/", 1)[-1]}).encode()
                    code, kind = 200, "application/json"
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller is gone (a killed server): nothing to answer

            do_GET = do_POST = _answer  # http.server's method names

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler

    def start(self) -> CounterStub:
        """Serve on an ephemeral loopback port, from a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release every held call and stop serving."""
        with self._lock:
            gates, self._gates = list(self._gates.values()), {}
        for gate in gates:
            gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> CounterStub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
