from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers.workflows import SIX

import graph_runtime.errors as errors_module
from graph_runtime.errors import GraphRuntimeError
from graph_runtime.runtime import Runtime
from server.errors import ERROR_STATUS

ENDPOINTS = [
    "/api/v1/execute",
    "/api/v1/tasks",
    "/api/v1/workflows",
    "/api/v1/workflows/validate",
    "/api/v1/execute/x/resume",
]


def assert_error_body(response: httpx.Response, status: int, code: str = "E001") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "code", "errors"} and body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    for item in body["errors"]:
        assert set(item) == {"path", "message", "code", "severity"}
        assert item["path"] == "" or item["path"].startswith("/")
    return body


def test_the_table_covers_every_domain_error() -> None:
    classes: list[type[GraphRuntimeError]] = [
        cls
        for _, cls in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(cls, GraphRuntimeError)
    ]
    assert set(classes) == set(ERROR_STATUS)
    for cls in classes:
        assert ERROR_STATUS[cls] == cls.http_status, cls  # one truth: the table agrees


def test_request_validation_errors_carry_json_pointers(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/execute",
        json={"workflow_id": "six", "priority": 11, "input_data": [1], "execution_id": "ä"},
    )
    body = assert_error_body(r, 422)
    assert {e["path"] for e in body["errors"]} == {"/priority", "/input_data", "/execution_id"}
    r = client.post(
        "/api/v1/tasks", json={"task_type": "six", "parameters": {"a": {"b": [1]}}, "x": 1}
    )
    assert [e["path"] for e in assert_error_body(r, 422)["errors"]] == ["/x"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _hostile_bodies() -> Iterator[tuple[str, bytes | str]]:
    yield "empty", b""
    yield "malformed", b'{"workflow_id": '
    yield "not json", b"\xff\xfe\x00garbage"
    yield "array", b"[]"
    yield "string", b'"six"'
    yield "null", b"null"
    yield "number", b"1e999999"
    yield "huge int", b'{"workflow_id": "six", "priority": ' + b"9" * 5000 + b"}"
    yield "huge float", b'{"workflow_id": "six", "timeout_seconds": 1e308}'
    yield "nan", b'{"workflow_id": "six", "input_data": {"x": NaN}}'
    yield "infinity", b'{"workflow_id": "six", "input_data": {"x": [Infinity]}}'
    yield "deep", '{"workflow_id": "six", "input_data": {"x": ' + _nested(50_000) + "}}"
    yield "deep ok", '{"workflow_id": "six", "input_data": {"x": ' + _nested(900) + "}}"
    yield "wrong types", json.dumps({"workflow_id": ["six"], "priority": "high", "input_data": 3})
    yield "unicode", json.dumps({"workflow_id": "ワークフロー", "execution_id": "実行-1"})
    yield "nul", json.dumps({"workflow_id": "six\x00", "execution_id": "a\x00b"})
    yield "definition junk", json.dumps({"workflow_id": "six", "definition": {"nodes": "x"}})
    yield "definition deep", '{"workflow_id": "six", "definition": {"ui": ' + _nested(900) + "}}"
    yield "task junk", json.dumps({"task_type": {"a": 1}, "priority": None, "parameters": []})
    yield "value nan", b'{"value": NaN}'


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_input_makes_a_500(client: httpx.Client, endpoint: str) -> None:
    client.post("/api/v1/workflows", json=SIX)
    for name, body in _hostile_bodies():
        r = client.post(endpoint, content=body, headers={"content-type": "application/json"})
        assert r.status_code < 500, (name, r.status_code, r.text[:300])
        if r.status_code >= 400:
            assert_error_body(r, r.status_code)


def test_bad_ids_in_paths_are_422_or_404(client: httpx.Client) -> None:
    for run_id in ("ünï", "a b", "x" * 129, "%00", "..", "a%2Fb", "🙂"):
        for path in ("status", "logs", "steps", "events"):
            r = client.get(f"/api/v1/execute/{run_id}/{path}")
            assert r.status_code in (404, 422), (run_id, path, r.status_code)
            assert_error_body(r, r.status_code)
        assert client.post(f"/api/v1/execute/{run_id}/stop").status_code in (404, 422)
        assert client.get(f"/api/v1/tasks/{run_id}").status_code in (404, 422)
        assert client.delete(f"/api/v1/tasks/{run_id}").status_code in (404, 422)
        assert client.get(f"/api/v1/workflows/{run_id}").status_code in (404, 422)


def test_unknown_routes_and_methods_answer_an_error_body(client: httpx.Client) -> None:
    assert_error_body(client.get("/nope"), 404)
    r = client.put("/api/v1/execute")
    assert_error_body(r, 405)
    assert "POST" in r.headers["allow"]


def test_bodies_over_the_limit_are_413(client: httpx.Client) -> None:
    client.post("/api/v1/workflows", json=SIX)
    big = json.dumps({"workflow_id": "six", "input_data": {"x": "y" * 70_000}})
    for endpoint in ENDPOINTS:
        r = client.post(endpoint, content=big, headers={"content-type": "application/json"})
        assert_error_body(r, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"workflow_id": "six", "input_data": {"x": "'
        for _ in range(70):
            yield b"y" * 1000
        yield b'"}}'

    for endpoint in ENDPOINTS:
        r = client.post(endpoint, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers
        assert_error_body(r, 413)
    # Just under the limit is fine.
    ok = json.dumps({"workflow_id": "six", "input_data": {"x": "y" * 60_000}})
    assert (
        client.post(
            "/api/v1/execute", content=ok, headers={"content-type": "application/json"}
        ).status_code
        == 202
    )


def test_an_unexpected_error_is_a_logged_500_without_traceback(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: Runtime) -> list[Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Runtime, "list_workflows", broken)
    r = client.get("/api/v1/workflows")
    body = assert_error_body(r, 500, code="E003")
    assert "secret" not in r.text and "Traceback" not in r.text
    assert body["errors"] == []
    assert any("unexpected error" in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_input_nested_deeper_than_expressions_see_is_refused_up_front(
    client: httpx.Client,
) -> None:
    client.post("/api/v1/workflows", json=SIX)
    ok = '{"workflow_id": "six", "input_data": {"x": ' + _nested(60) + "}}"
    headers = {"content-type": "application/json"}
    assert client.post("/api/v1/execute", content=ok, headers=headers).status_code == 202
    deep = '{"workflow_id": "six", "input_data": {"x": ' + _nested(100) + "}}"
    body = assert_error_body(client.post("/api/v1/execute", content=deep, headers=headers), 422)
    assert "nests deeper than 64 levels" in body["detail"]
    assert body["errors"][0]["path"] == "/x" + "/0" * 63
