from __future__ import annotations

import httpx
from helpers.live_server import live_server
from helpers.waits import eventually
from helpers.workflows import SIX, SLOW

from graph_runtime.config import RuntimeConfig

TASKS = "/api/v1/tasks"


def task_status(client: httpx.Client, task_id: str, *statuses: str) -> dict[str, object]:
    def probe() -> dict[str, object] | None:
        body: dict[str, object] = client.get(f"{TASKS}/{task_id}").json()
        return body if body["status"] in statuses else None

    return eventually(probe, what=f"task {task_id} reaching {statuses}")


def started(client: httpx.Client, task_id: str) -> None:
    """Wait until the task's first step is recorded: it is running (see in_nap)."""
    eventually(
        lambda: client.get(f"/api/v1/execute/{task_id}/steps").json()["steps"],
        what=f"task {task_id} starting",
    )


def test_create_and_poll_a_task(client: httpx.Client) -> None:
    client.post("/api/v1/workflows", json=SIX)
    r = client.post(
        TASKS, json={"task_type": "six", "description": "demo", "priority": 8, "parameters": None}
    )
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] in ("pending", "running", "completed")
    assert set(created) >= {"task_id", "progress", "result", "error", "created_at", "updated_at"}
    done = task_status(client, created["task_id"], "completed")
    assert done["progress"] == 1.0 and done["result"] == {"trail": ["a", "b", "c", "d"], "n": 4}
    assert done["error"] is None and done["message"]
    # The task is a run: the execution API sees it too.
    status = client.get(f"/api/v1/execute/{created['task_id']}/status").json()
    assert status["workflow_id"] == "six" and status["priority"] == 8


def test_task_errors(client: httpx.Client) -> None:
    r = client.post(TASKS, json={"task_type": "ghost"})
    assert r.status_code == 404 and r.json()["code"] == "E001"
    r = client.post(TASKS, json={"task_type": "six", "priority": 0, "timeout_seconds": -1})
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {"/priority", "/timeout_seconds"}
    assert client.get(f"{TASKS}/ghost").status_code == 404
    assert client.delete(f"{TASKS}/ghost").status_code == 404


def test_delete_stops_a_running_task_and_refuses_a_finished_one(client: httpx.Client) -> None:
    client.post("/api/v1/workflows", json=SLOW)
    task_id = client.post(TASKS, json={"task_type": "slow", "parameters": {"seconds": 30}}).json()[
        "task_id"
    ]
    started(client, task_id)
    r = client.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 200 and r.json()["status"] in ("stopping", "stopped")
    stopped = task_status(client, task_id, "stopped")
    assert stopped["error_code"] == "E004"
    r = client.delete(f"{TASKS}/{task_id}")
    assert r.status_code == 409 and r.json()["code"] == "E001"


def test_delete_cancels_a_task_that_has_not_started(config: RuntimeConfig) -> None:
    with (
        live_server(config.model_copy(update={"max_concurrent_runs": 1})) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        client.post("/api/v1/workflows", json=SLOW)
        blocker = client.post(TASKS, json={"task_type": "slow", "parameters": {"seconds": 30}})
        started(client, blocker.json()["task_id"])
        queued = client.post(TASKS, json={"task_type": "slow", "parameters": {"seconds": 0}})
        assert queued.json()["status"] == "pending"
        r = client.delete(f"{TASKS}/{queued.json()['task_id']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert client.delete(f"{TASKS}/{blocker.json()['task_id']}").status_code == 200
