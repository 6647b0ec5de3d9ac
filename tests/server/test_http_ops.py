from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from helpers.waits import eventually, wait_for_status
from helpers.workflows import SIX

from graph_runtime.api_models import ErrorBody
from graph_runtime.runtime import Runtime
from server.app import create_app

ROUTES = {
    ("POST", "/api/v1/execute"),
    ("GET", "/api/v1/execute/{execution_id}/status"),
    ("GET", "/api/v1/execute/{execution_id}/logs"),
    ("GET", "/api/v1/execute/{execution_id}/steps"),
    ("GET", "/api/v1/execute/{execution_id}/events"),
    ("POST", "/api/v1/execute/{execution_id}/pause"),
    ("POST", "/api/v1/execute/{execution_id}/resume"),
    ("POST", "/api/v1/execute/{execution_id}/stop"),
    ("POST", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/{task_id}"),
    ("DELETE", "/api/v1/tasks/{task_id}"),
    ("POST", "/api/v1/workflows"),
    ("GET", "/api/v1/workflows"),
    ("GET", "/api/v1/workflows/{workflow_id}"),
    ("POST", "/api/v1/workflows/validate"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
}


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name}")


def test_healthz(client: httpx.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["active_runs"] == 0 and body["queue_depth"] == 0
    assert body["version"]


def test_metrics(client: httpx.Client) -> None:
    client.post("/api/v1/workflows", json=SIX)
    client.post("/api/v1/execute", json={"execution_id": "m", "workflow_id": "six"})
    wait_for_status(client, "m", "completed")
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert metric(text, 'graph_runtime_runs{status="completed"}') == 1
    assert metric(text, 'graph_runtime_runs{status="failed"}') == 0
    assert metric(text, "graph_runtime_queue_depth") == 0
    assert metric(text, "graph_runtime_active_runs") == 0
    assert metric(text, "graph_runtime_runs_success_ratio") == 1.0
    assert metric(text, "graph_runtime_step_duration_seconds_count") == 6
    assert metric(text, 'graph_runtime_step_duration_seconds_bucket{le="+Inf"}') == 6
    buckets = [float(line.split()[-1]) for line in text.splitlines() if "_bucket{" in line]
    assert buckets == sorted(buckets)  # cumulative
    assert "# TYPE graph_runtime_step_duration_seconds histogram" in text


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"].rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_lists_every_route_documented(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    operations = {
        (method.upper(), path): op
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    assert ROUTES <= set(operations)  # other routers (the Agent Protocol) add theirs
    schemas = spec["components"]["schemas"]
    used: set[str] = set()
    for key in ROUTES:
        op = operations[key]
        assert op.get("summary") and op.get("description"), key
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok and all(op["responses"][s].get("content") for s in ok), key
        assert "500" in op["responses"], key
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in op["responses"], key
            error = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}, key
        used.update(_refs(op))
    while True:  # every schema these routes reach, through nested models too
        more = {ref for name in used for ref in _refs(schemas[name])} - used
        if not more:
            break
        used |= more
    assert "HTTPValidationError" not in used
    for name in used:
        for field, prop in schemas[name].get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    assert set(ErrorBody.model_fields) == set(schemas["ErrorBody"]["properties"])
    for path in ("/docs", "/redoc"):
        assert client.get(path).status_code == 200


async def test_a_given_runtime_is_served_and_left_open(tmp_path: Path) -> None:
    # No stream here, so the in-process transport is fine (STYLE.md §24 bans it for SSE).
    async with Runtime(tmp_path / "given.db") as runtime:
        app = create_app(runtime)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://app"
            ) as client,
        ):
            assert (await client.get("/healthz")).json()["status"] == "ok"
            assert (await client.post("/api/v1/workflows", json=SIX)).status_code == 201
        assert "publish" not in vars(runtime.bus)  # the metrics tap is gone
        assert [w.workflow_id for w in await runtime.list_workflows()] == ["six"]  # still open


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_graph_runtime_serve(tmp_path: Path) -> None:
    port = _free_port()
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "six.json").write_text(json.dumps(SIX))
    env: dict[str, Any] = {**os.environ, "GRAPH_RUNTIME_SHUTDOWN_GRACE_SECONDS": "1"}
    env["GRAPH_RUNTIME_PORT"] = "1"  # the flag wins over the variable
    script = Path(sys.executable).with_name("graph-runtime")
    proc = subprocess.Popen(
        [
            str(script),
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "s.db"),
            "--workflows",
            str(flows),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> dict[str, Any] | None:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                return body
            except httpx.TransportError:
                return None

        assert eventually(healthy, timeout=30, what="the server answering")["status"] == "ok"
        listed = httpx.get(f"http://127.0.0.1:{port}/api/v1/workflows").json()["workflows"]
        assert [w["workflow_id"] for w in listed] == ["six"]
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15).
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
        assert proc.stdout is not None
        output = proc.stdout.read().decode()
        assert "Application shutdown complete" in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    assert (tmp_path / "s.db").exists()


async def test_serve_refuses_a_database_in_use_with_one_clear_line(tmp_path: Path) -> None:
    db = tmp_path / "busy.db"
    script = Path(sys.executable).with_name("graph-runtime")
    async with Runtime(db):  # this process holds the database
        done = subprocess.run(
            [str(script), "serve", "--port", str(_free_port()), "--db", str(db)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert "cannot start: another graph-runtime process is using" in done.stderr
    assert "[E006]" in done.stderr and "Traceback" not in done.stderr + done.stdout
