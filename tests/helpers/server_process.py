"""``graph-runtime serve`` in a subprocess, for the fault suite: it can be killed for real.

::

    with ServerProcess(tmp_path / "runs.db") as server:
        server.client.post("/api/v1/execute", json=body)
        server.kill()      # SIGKILL: nothing of the process runs after it
        server.start()     # a new process on the same database (and a new port)

Settings reach the server the way an operator's would: ``GRAPH_RUNTIME_*`` variables.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["ServerProcess"]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0  # start-up takes seconds on a busy 2-core CI box


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``serve`` process at a time on one database; restartable."""

    def __init__(self, db: Path, *, autostart: bool = True, **env: str) -> None:
        self.db = db
        self.autostart = autostart
        self.env = {
            "GRAPH_RUNTIME_SHUTDOWN_GRACE_SECONDS": "2",
            "GRAPH_RUNTIME_HEARTBEAT_SECONDS": "0.5",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self.log = db.with_suffix(".log")
        self.starts = 0
        self.returncode: int | None = None
        """Exit code of the last process that died at start-up (``expect_death``)."""

    @property
    def client(self) -> httpx.Client:
        """A client of the running process."""
        assert self._client is not None, "the server is not running"
        return self._client

    @property
    def base_url(self) -> str:
        """The running process's URL."""
        return str(self.client.base_url)

    def start(self, *, expect_death: bool = False, **env: str) -> None:
        """Start a process (extra ``env`` for this start only); wait until it serves.

        With ``expect_death`` wait instead until it exits (a fail point killed it).
        """
        port = _free_port()
        # Fail points only where this test asked for them, never inherited.
        inherited = {k: v for k, v in os.environ.items() if k != "GRAPH_RUNTIME_FAILPOINTS"}
        full_env = {**inherited, **self.env, **env, "PYTHONUNBUFFERED": "1"}
        self.starts += 1
        db = str(self.db)
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", *("--port", str(port)), "--db", db],
                cwd=ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if expect_death:
            self.returncode = self.proc.wait(STARTUP_TIMEOUT)
            self.proc = None
            return
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start-up; see {self.log}")
            try:
                if self._client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {self.log}")
            time.sleep(0.05)

    def wait_death(self, timeout: float = 15.0) -> int:
        """Wait until the process exits (a fail point, a signal sent); its return code."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._drop()
        return code

    def kill(self) -> None:
        """``kill -9``."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._drop()

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM; wait for the graceful exit; its return code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._drop()
        return code

    def _drop(self) -> None:
        self.proc = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ServerProcess:
        if self.autostart:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.kill()
