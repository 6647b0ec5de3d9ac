"""Storage faults against the real server in a subprocess: the database refuses writes.

Another connection holding the write lock past ``busy_timeout``, a full database (``PRAGMA
max_page_count``) and a read-only one (``PRAGMA query_only``), mid-run and at start-up. The
server stays up and answers reads, ``/healthz`` says degraded (503) with the reason, refused
records wait in the write-failure journal, and once the database takes writes again the run
goes on from its last checkpoint and ends exactly like the fault-free run.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.fault_checks import API, check_like_baseline, status_of, submit
from helpers.server_process import ServerProcess
from helpers.waits import eventually
from helpers.workflows import chain

from checkpoints.journal import journal_path

pytestmark = pytest.mark.timeout(120)

# Six links of 0.15 s waits: a fault lands mid-run, with checkpoints before and after it.
DRIP = chain("sdrip", 6, seconds=0.15)
FAST = {"GRAPH_RUNTIME_BUSY_TIMEOUT_SECONDS": "0.5", "GRAPH_RUNTIME_STORAGE_RETRY_SECONDS": "0.3"}


def degraded(client: httpx.Client) -> dict[str, Any] | None:
    response = client.get("/healthz")
    body: dict[str, Any] = response.json()
    if response.status_code == 503:
        assert body["status"] == "degraded" and body["error"], body
        return body
    assert response.status_code == 200 and body["status"] == "ok", body
    return None


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("disk_full", "full"), ("read_only", "readonly")],
    ids=["disk-full", "read-only"],
)
def test_a_database_that_refuses_writes_mid_run_degrades_then_the_run_completes(
    tmp_path: Path, fault: str, reason: str
) -> None:
    db = tmp_path / "runs.db"
    with ServerProcess(db, autostart=False, **FAST) as server:
        # From the 6th checkpoint on, the database refuses writes for 2 s.
        server.start(GRAPH_RUNTIME_FAILPOINTS=f"after_checkpoint={fault}:6:2")
        client = server.client
        submit(client, "f", DRIP)
        health = eventually(lambda: degraded(client), timeout=20, what="/healthz degraded")
        assert reason in health["error"] and health["writable"] is False
        # The server stays up and answers reads; the run waits, it does not fail.
        assert status_of(client, "f")["status"] == "running"
        assert client.get(f"{API}/f/steps").status_code == 200
        eventually(lambda: degraded(client) is None, timeout=20, what="/healthz ok again")
        submit(client, "base", DRIP)
        check_like_baseline(server, "f", "base")
        assert degraded(client) is None
    journal = journal_path(db)
    assert not journal.exists() or journal.stat().st_size == 0  # everything was replayed


def test_a_lock_held_past_busy_timeout_delays_the_run_and_reads_go_on(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with ServerProcess(db, **FAST) as server:
        client = server.client
        submit(client, "base", DRIP)
        eventually(lambda: status_of(client, "base")["status"] == "completed", timeout=20)
        release, held = threading.Event(), threading.Event()

        def hog() -> None:
            with closing(sqlite3.connect(db, isolation_level=None)) as conn:
                conn.execute("BEGIN IMMEDIATE")
                held.set()
                release.wait(15)
                conn.execute("COMMIT")

        thread = threading.Thread(target=hog)
        submit(client, "h", DRIP)
        eventually(lambda: status_of(client, "h")["status"] == "running", timeout=20)
        thread.start()
        try:
            assert held.wait(5)
            # busy_timeout (0.5 s) + 2 s: writes are refused, the run waits for the lock.
            health = eventually(lambda: degraded(client), timeout=10, what="/healthz degraded")
            assert "locked" in health["error"]
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                assert status_of(client, "h")["status"] == "running"
                assert client.get("/api/v1/workflows").status_code == 200
                time.sleep(0.2)
        finally:
            release.set()
            thread.join(10)
        check_like_baseline(server, "h", "base")
        eventually(lambda: degraded(client) is None, timeout=10, what="/healthz ok again")


def test_a_read_only_database_at_start_up_is_refused_with_a_clear_message(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    with ServerProcess(db, autostart=False, **FAST) as server:
        server.start(expect_death=True, GRAPH_RUNTIME_FAILPOINTS="open=read_only")
        assert server.returncode not in (None, 0)
        log = server.log.read_text()
        assert "refuses writes" in log and "readonly" in log, log
        assert "Traceback" not in log, log
        # Nothing was lost or left half-done: the next start on the same file serves.
        server.start()
        submit(server.client, "after", DRIP)
        eventually(lambda: status_of(server.client, "after")["status"] == "completed", timeout=20)
