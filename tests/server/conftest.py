from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.live_server import live_server

from graph_runtime.config import RuntimeConfig


@pytest.fixture
def config(tmp_path: Path) -> RuntimeConfig:
    """Settings for one test server: its own database, quick heartbeats and shutdown."""
    return RuntimeConfig(
        db=tmp_path / "runs.db",
        heartbeat_seconds=0.5,
        shutdown_grace_seconds=0.5,
        max_body_bytes=64_000,
    )


@pytest.fixture
def base_url(config: RuntimeConfig) -> Iterator[str]:
    """A live server (uvicorn in a thread) for this test."""
    with live_server(config) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c
