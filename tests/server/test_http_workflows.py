from __future__ import annotations

import json
from pathlib import Path

import httpx
from helpers.live_server import live_server
from helpers.workflows import SIX, SLOW

from graph_runtime.config import RuntimeConfig

WORKFLOWS = "/api/v1/workflows"


def test_store_versions_list_and_fetch(client: httpx.Client) -> None:
    r = client.post(WORKFLOWS, json=SIX)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["workflow_id"] == "six" and first["version"] == 1
    assert first["definition"]["nodes"] and first["content_hash"]
    again = client.post(WORKFLOWS, json=SIX)
    assert again.status_code == 200 and again.json()["version"] == 1  # unchanged content
    changed = client.post(WORKFLOWS, json={**SIX, "name": "Six steps"})
    assert changed.status_code == 201 and changed.json()["version"] == 2
    assert changed.json()["name"] == "Six steps"
    client.post(WORKFLOWS, json=SLOW)

    listed = client.get(WORKFLOWS).json()["workflows"]
    assert [(w["workflow_id"], w["version"]) for w in listed] == [("six", 2), ("slow", 1)]
    assert all(w["definition"] is None for w in listed)

    assert client.get(f"{WORKFLOWS}/six").json()["version"] == 2
    old = client.get(f"{WORKFLOWS}/six", params={"version": 1}).json()
    assert old["version"] == 1 and "name" not in old["definition"]
    assert client.get(f"{WORKFLOWS}/six", params={"version": 9}).status_code == 404
    assert client.get(f"{WORKFLOWS}/nope").status_code == 404
    assert client.get(f"{WORKFLOWS}/six", params={"version": 0}).status_code == 422


def test_ids_of_minimal_documents(client: httpx.Client) -> None:
    minimal = {k: v for k, v in SIX.items() if k != "id"}
    r = client.post(WORKFLOWS, json=minimal, params={"workflow_id": "mini"})
    assert r.status_code == 201 and r.json()["workflow_id"] == "mini"
    r = client.post(WORKFLOWS, json=minimal)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/id"
    r = client.post(WORKFLOWS, json=SIX, params={"workflow_id": "other"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "/id"


def test_invalid_documents_are_422_with_every_problem(client: httpx.Client) -> None:
    bad = {**SIX, "edges": [*SIX["edges"], {"from": "out", "to": "ghost"}]}
    r = client.post(WORKFLOWS, json=bad)
    assert r.status_code == 422
    assert "/edges/5/to" in [e["path"] for e in r.json()["errors"]]
    assert client.get(f"{WORKFLOWS}/six").status_code == 404
    junk: object
    for junk in ([], "x", 3):
        assert client.post(WORKFLOWS, json=junk).status_code == 422


def test_validate_reports_without_storing(client: httpx.Client) -> None:
    r = client.post(f"{WORKFLOWS}/validate", json=SIX)
    assert r.status_code == 200 and r.json() == {"valid": True, "errors": [], "warnings": []}
    bad = {**SIX, "edges": [*SIX["edges"], {"from": "out", "to": "ghost"}]}
    report = client.post(f"{WORKFLOWS}/validate", json=bad).json()
    assert report["valid"] is False
    assert [e["path"] for e in report["errors"]] == ["/edges/5/to"]
    assert all(e["code"] == "E001" and e["severity"] == "error" for e in report["errors"])
    assert client.get(WORKFLOWS).json()["workflows"] == []


def test_the_workflows_folder_is_loaded_at_startup(config: RuntimeConfig, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "six.json").write_text(json.dumps(SIX))
    minimal = {k: v for k, v in SLOW.items() if k != "id"}
    (folder / "nap.json").write_text(json.dumps(minimal))  # id from the file name
    (folder / "broken.json").write_text("{not json")
    (folder / "invalid.json").write_text(json.dumps({**SIX, "id": "invalid", "nodes": []}))
    (folder / "notes.txt").write_text("ignored")
    with live_server(config.model_copy(update={"workflows": folder})) as url:
        listed = httpx.get(f"{url}{WORKFLOWS}").json()["workflows"]
    assert [w["workflow_id"] for w in listed] == ["nap", "six"]
