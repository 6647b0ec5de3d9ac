"""A synchronous tool that blocks its thread, for tests of what bounds a run.

Register it with ``GRAPH_RUNTIME_TOOLS=helpers.blocking_tools:TOOLS`` (``tests`` on the server's
``PYTHONPATH``, as ``LoopbackServerProcess`` sets it). ``tests.sleep_sync`` sleeps with
``time.sleep``: the node stays inside synchronous code, never yielding to the event loop.
"""

from __future__ import annotations

import time

from langchain_core.tools import tool

__all__ = ["MAX_SLEEP", "TOOLS", "sleep_sync"]

MAX_SLEEP = 60.0


@tool
def sleep_sync(seconds: float) -> float:
    """Block the calling thread for ``seconds`` (at most ``MAX_SLEEP``); the seconds slept."""
    seconds = min(float(seconds), MAX_SLEEP)
    time.sleep(seconds)
    return seconds


#: Registry name → tool.
TOOLS = {"tests.sleep_sync": sleep_sync}
