"""A real uvicorn server in a thread, for tests that talk HTTP to the app (STYLE.md §24).

::

    with live_server(RuntimeConfig(db=tmp_path / "runs.db")) as base_url:
        httpx.get(f"{base_url}/healthz")

The socket is bound to ``127.0.0.1:0`` before the server starts, so the port is known at once
and never races with another test; uvicorn installs no signal handlers outside the main
thread. Leaving the block shuts the server down the way ``SIGTERM`` would (streams closed,
runs drained), so a second ``live_server`` on the same database sees a restarted process.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from graph_runtime.config import RuntimeConfig
from server.app import create_app
from server.cli import build_server

__all__ = ["live_server"]

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 15.0


@contextmanager
def live_server(config: RuntimeConfig, *, send_buffer: int | None = None) -> Iterator[str]:
    """Serve ``create_app(config=config)`` on a free loopback port; yield its base URL.

    ``send_buffer`` fixes the kernel send buffer of every connection (accepted sockets
    inherit it from the listening one), so a client that stops reading blocks the server's
    writes after kilobytes instead of the megabytes send-buffer autotuning allows.
    """
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
    # says TCP, and with Nagle on every second SSE frame waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = build_server(create_app(config=config), config, log_level="warning")
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        sock.close()
        if thread.is_alive():  # pragma: no cover -- only when shutdown hangs, a bug to report
            raise RuntimeError("the test server did not stop")
