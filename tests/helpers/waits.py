"""Polling under a deadline (never sleep-then-assert), over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

__all__ = ["eventually", "wait_for_status"]

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 5.0, what: str = "it") -> T:
    """Call ``probe`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def wait_for_status(
    client: httpx.Client, execution_id: str, *statuses: str, timeout: float = 5.0
) -> dict[str, Any]:
    """Poll ``GET /api/v1/execute/{id}/status`` until the run is in one of ``statuses``."""

    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/api/v1/execute/{execution_id}/status").json()
        return body if body.get("status") in statuses else None

    return eventually(probe, timeout=timeout, what=f"run {execution_id} reaching {statuses}")
