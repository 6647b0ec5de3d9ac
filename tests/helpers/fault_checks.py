"""What the fault suites check after a fault: the run against the same workflow's fault-free run.

The same final result, one completed step record per task (and the same completed steps), event
ids 1..n with no gap and exactly one ``end`` (the last), a legal status path, and no run left
``running``/``stopping`` without an owner.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from helpers.server_process import ServerProcess
from helpers.sse import SSEEvent, iter_sse
from helpers.waits import eventually, wait_for_status

from graph_runtime.models import TRANSITIONS, TaskStatus

__all__ = [
    "API",
    "check_events",
    "check_like_baseline",
    "completed_steps",
    "events",
    "status_of",
    "submit",
    "unowned",
    "wait_step",
]

API = "/api/v1/execute"


def submit(
    client: httpx.Client,
    run_id: str,
    workflow: dict[str, Any],
    *,
    timeout: float | None = None,
    **data: Any,
) -> None:
    """Store ``workflow`` and start run ``run_id`` of it with input ``data``."""
    assert client.post("/api/v1/workflows", json=workflow).status_code in (200, 201)
    body: dict[str, Any] = {
        "execution_id": run_id,
        "workflow_id": workflow["id"],
        "input_data": data,
    }
    if timeout is not None:
        body["timeout_seconds"] = timeout
    response = client.post(API, json=body)
    assert response.status_code == 202, response.text


def status_of(client: httpx.Client, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{API}/{run_id}/status").json()
    return body


def events(client: httpx.Client, run_id: str, **headers: str) -> list[SSEEvent]:
    with client.stream("GET", f"{API}/{run_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        return [e for e in iter_sse(stream) if isinstance(e, SSEEvent)]


def completed_steps(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    steps = client.get(f"{API}/{run_id}/steps").json()["steps"]
    return [s for s in steps if s["completed"]]


def check_events(frames: list[SSEEvent]) -> list[tuple[str | None, str]]:
    """Ids 1..n, one `end` (the last), a legal status path; returns the path."""
    ids = [int(f.id or 0) for f in frames]
    assert ids == list(range(1, len(ids) + 1)), ids
    assert [f.event for f in frames].count("end") == 1
    assert frames[-1].event == "end"
    path = [
        (f.json()["data"]["old"], f.json()["data"]["new"]) for f in frames if f.event == "status"
    ]
    assert path[0] == (None, "pending")
    for (_, before), (old, new) in itertools.pairwise(path):
        assert old == before, path
        assert TaskStatus(new) in TRANSITIONS[TaskStatus(old)], path
    return path


def unowned(db: Path) -> list[str]:
    """Runs marked running/stopping with no owner (read-only, beside the live server)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT run_id FROM runs WHERE status IN ('running', 'stopping') AND owner IS NULL"
        ).fetchall()
    return [r[0] for r in rows]


def check_like_baseline(server: ServerProcess, run_id: str, baseline: str) -> list[Any]:
    """The full comparison with the fault-free run ``baseline``; returns the status path."""
    client = server.client
    done = wait_for_status(client, run_id, "completed", "failed", timeout=20)
    base = wait_for_status(client, baseline, "completed", timeout=20)
    assert done["status"] == "completed", done
    assert done["result"] == base["result"]
    steps, base_steps = completed_steps(client, run_id), completed_steps(client, baseline)
    per_task = Counter(s["task_id"] for s in steps)
    assert set(per_task.values()) == {1}, per_task
    assert sorted(s["step"] for s in steps) == sorted(s["step"] for s in base_steps)
    path = check_events(events(client, run_id))
    check_events(events(client, baseline))
    assert unowned(server.db) == []
    return path


def wait_step(client: httpx.Client, run_id: str, node: str) -> None:
    eventually(
        lambda: any(s["step"] == node for s in completed_steps(client, run_id)),
        timeout=20,
        what=f"step {node}",
    )
