"""The ``graph-runtime`` command with ``serve``: the core's commands plus the HTTP server.

::

    graph-runtime serve [--host 127.0.0.1] [--port 8000] [--db PATH] [--workflows DIR]

Each flag mirrors a ``RuntimeConfig`` field and its ``GRAPH_RUNTIME_*`` variable; the other
settings (concurrency, heartbeat, body limit, shutdown grace...) come from the environment.
``serve`` lives here, not in ``graph_runtime.cli``, because ``server`` may import the core and
never the reverse. SIGINT/SIGTERM shut down gracefully: event streams end, every run is drained
at its next superstep boundary, and the next start resumes it.

uvicorn's defaults pick its fastest parts when they are installed (they are dependencies):
uvloop for the event loop and httptools for parsing HTTP/1.1. Once started, ``serve`` tunes
the cyclic garbage collector for a long-lived process (:func:`tune_collector`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from checkpoints.storage import open_runtime_storage
from graph_runtime import cli
from graph_runtime._cli_io import EXIT_FAILED, EXIT_OK
from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import GraphRuntimeError
from server.app import begin_shutdown, create_app

__all__ = [
    "GC_YOUNG_THRESHOLD",
    "SERVE",
    "Server",
    "build_server",
    "cmd_serve",
    "main",
    "tune_collector",
]

logger = logging.getLogger(__name__)

#: New container objects between two collections of the youngest generation (CPython: 700).
GC_YOUNG_THRESHOLD = 7_000


def tune_collector() -> None:
    """Keep the cyclic garbage collector off what startup loaded, and run it less often.

    Modules, the app, the runtime and its compiled graphs live as long as the process:
    ``gc.freeze()`` takes them out of every later collection, so a full collection walks only
    what was made since (a few milliseconds instead of a hundred or more). A larger youngest
    generation means fewer collections, and fewer short-lived objects promoted to older ones.
    On the SDK bench this cut the collector's time per run by about three quarters.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


class Server(uvicorn.Server):
    """uvicorn's server, calling ``on_shutdown`` as soon as shutdown begins.

    uvicorn waits for open connections before it runs the app's lifespan shutdown, so an
    endless event stream would hold it up; ``on_shutdown`` ends the streams first. With
    ``tune_gc``, :func:`tune_collector` runs once the app has started: a process-wide setting,
    for a process that does nothing but serve (``graph-runtime serve``).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        on_shutdown: Callable[[], None],
        *,
        tune_gc: bool = False,
    ) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown
        self._tune_gc = tune_gc

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._tune_gc and self.started:
            tune_collector()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            self._on_shutdown()
        except Exception:
            logger.exception("shutdown hook failed", extra={"action": "shutdown"})
        await super().shutdown(sockets=sockets)


def build_server(
    app: FastAPI, config: RuntimeConfig, *, log_level: str = "info", tune_gc: bool = False
) -> Server:
    """A uvicorn server for ``app`` on ``config.host``/``config.port`` (see ``Server``)."""
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        lifespan="on",
        log_level=log_level,
        # Frozen clients get this long to let go before their connections are cut.
        timeout_graceful_shutdown=max(1, round(config.shutdown_grace_seconds)),
    )
    return Server(uv_config, on_shutdown=lambda: begin_shutdown(app), tune_gc=tune_gc)


def _serve_args(parser: argparse.ArgumentParser) -> None:
    cli.config_flag(parser, "host", "--host", metavar="HOST")
    cli.config_flag(parser, "port", "--port", metavar="PORT")
    cli.config_flag(parser, "db", "--db", metavar="PATH")
    cli.config_flag(parser, "workflows", "--workflows", metavar="DIR")
    cli.config_flag(parser, "tools", "--tools", metavar="MODULE:ATTR[,...]")


def storage_problem(config: RuntimeConfig) -> str | None:
    """Why the database cannot be served, or None: open it once and close it again.

    Another process holding it, a file that cannot be created, a database that refuses
    writes (read-only, full): the operator gets one clear line instead of a traceback from
    the application's start-up. A write-failure journal left by a dead process is replayed.
    """

    async def check() -> None:
        async with open_runtime_storage(
            config.db, checkpointer=config.checkpointer, busy_timeout=config.busy_timeout_seconds
        ):
            pass

    try:
        asyncio.run(check())
    except GraphRuntimeError as exc:
        return f"{exc.message} [{exc.code.value}]"
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the HTTP API until SIGINT or SIGTERM."""
    config = cli.runtime_config(args)
    problem = storage_problem(config)
    if problem is not None:
        print(f"graph-runtime serve: cannot start: {problem}", file=sys.stderr)
        return EXIT_FAILED
    server = build_server(create_app(config=config), config, tune_gc=True)
    server.run()
    return EXIT_OK if server.started else EXIT_FAILED


SERVE = cli.Command(
    name="serve", help="serve the HTTP API", configure=_serve_args, handler=cmd_serve
)


@contextmanager
def _with_serve() -> Iterator[None]:
    # graph_runtime.cli builds its parser from its COMMANDS list; list `serve` there only
    # while this entry point runs, so importing this module changes nothing.
    added = SERVE not in cli.COMMANDS
    if added:
        cli.COMMANDS.append(SERVE)
    try:
        yield
    finally:
        if added:
            cli.COMMANDS.remove(SERVE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (all of ``graph_runtime.cli``'s commands plus ``serve``)."""
    with _with_serve():
        return cli.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
