from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from graph_runtime.cli import build_parser, main, runtime_config
from graph_runtime.models import ErrorCode, TaskResponse, TaskStatus

ROUTING = str(Path(__file__).resolve().parents[2] / "examples" / "routing.json")

BAD = {
    "schema": "graph-runtime/workflow/v1",
    "id": "bad",
    "state": {"x": {"type": "integer", "default": 0}},
    "nodes": [
        {"id": "start", "type": "input"},
        {
            "id": "route",
            "type": "condition",
            "config": {
                "branches": [
                    {"name": "a", "when": "state.x > 1"},
                    {"name": "b", "when": "state.x >"},
                ]
            },
        },
        {"id": "done", "type": "output"},
    ],
    "edges": [
        {"from": "start", "to": "route"},
        {"from": "route", "branch": "a", "to": "done"},
        {"from": "route", "branch": "b", "to": "done"},
        {"from": "route", "branch": "default", "to": "done"},
    ],
}
# Fails at run time: integer division by the input's zero (E007).
FAILING = {
    "id": "boom",
    "nodes": [
        {"id": "start", "type": "input"},
        {"id": "calc", "type": "transform", "config": {"set": {"n": "100 / state.d"}}},
        {"id": "done", "type": "output"},
    ],
    "edges": [{"from": "start", "to": "calc"}, {"from": "calc", "to": "done"}],
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own GRAPH_RUNTIME_* settings must not leak into these tests."""
    for name in [k for k in os.environ if k.startswith("GRAPH_RUNTIME_")]:
        monkeypatch.delenv(name)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real entry point in subprocesses, started at once (each pays ~2 s of imports).

    The other cases call the same ``main()`` in-process.
    """
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "boom.json").write_text(json.dumps(FAILING))
    env_db = tmp / "from-env.db"
    cases = {
        "run_ok": ["run", ROUTING, "--input", '{"ticket": "Refund please", "customer": "Ada"}'],
        # A second database: the store allows one process per database file.
        "run_failing": [
            "run",
            str(tmp / "boom.json"),
            "-i",
            '{"d": 0}',
            "--db",
            str(tmp / "flag.db"),
        ],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPH_RUNTIME_")}
    env.update(GRAPH_RUNTIME_DB=str(env_db), PYTHONWARNINGS="ignore")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "graph_runtime.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp,
            env=env,
        )
        for name, argv in cases.items()
    }
    results: dict[str, Any] = {"tmp": tmp, "env_db": env_db}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        results[name] = Result(proc.returncode, out, err)
    return results


def test_run_prints_the_response_and_progress(cli: dict[str, Any]) -> None:
    r = cli["run_ok"]
    assert r.code == 0, r.stderr
    response = TaskResponse.model_validate_json(r.stdout)
    assert response.status is TaskStatus.COMPLETED
    assert response.result == {
        "queue": "billing",
        "tags": ["refund", "priority"],
        "reply": "Hi Ada, billing has your refund request (refund, priority).",
    }
    lines = r.stderr.splitlines()
    assert lines[0].startswith("[1/6] start completed ") and lines[0].endswith(" ms")
    assert any(line.startswith("[3/6] route completed") for line in lines)
    assert lines[-1] == f"run {response.task_id} completed"
    # No --db: GRAPH_RUNTIME_DB replaced the default, so nothing landed in the cwd.
    assert cli["env_db"].exists()
    assert not (cli["tmp"] / "graph_runtime.db").exists()


def test_run_failing_workflow_exits_1(cli: dict[str, Any]) -> None:
    r = cli["run_failing"]
    assert r.code == 1, r.stderr
    response = TaskResponse.model_validate_json(r.stdout)
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.DSL_EVALUATION_ERROR
    assert any(" calc failed " in line and "E007" in line for line in r.stderr.splitlines())
    assert (cli["tmp"] / "flag.db").exists()  # --db wins over the environment


# In-process: the same main(), without paying for another interpreter.


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", ROUTING]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("ok: routing (10 nodes, 13 edges)\n", "")


def test_validate_bad_lists_problems_with_pointers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(BAD))
    assert main(["validate", str(tmp_path / "bad.json")]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"invalid: {tmp_path / 'bad.json'} (")
    assert "\n  /nodes/1/config/branches/1/when: " in out and "invalid expression" in out
    assert "[E001]" in out


def test_validate_bad_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(BAD))
    assert main(["validate", "--json", str(tmp_path / "bad.json")]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert isinstance(report["warnings"], list)
    assert "/nodes/1/config/branches/1/when" in {e["path"] for e in report["errors"]}
    assert all(set(e) == {"path", "message", "code", "severity"} for e in report["errors"])


def test_run_rejects_input_that_breaks_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", ROUTING, "--input", '{"ticket": ""}', "--db", str(tmp_path / "db.sqlite")]
    assert main([*argv, "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err == ""
    response = TaskResponse.model_validate_json(out)
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.VALIDATION_ERROR
    assert main([*argv[:3], "{}", *argv[4:]]) == 2  # not quiet: the failed step says why
    err = capsys.readouterr().err
    assert (
        "[1/6] start failed" in err and "E001" in err and "'ticket' is a required property" in err
    )


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "$defs" in schema and "NodeSpec" in schema["$defs"]


def test_unreadable_and_non_json_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "cannot read workflow file" in err and "Traceback" not in err
    (tmp_path / "x.json").write_text("{not json")
    assert main(["validate", str(tmp_path / "x.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["validate", "--json", str(tmp_path / "x.json")]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and "not valid JSON" in report["errors"][0]["message"]
    assert main(["run", ROUTING, "--input", "[1, 2]"]) == 2
    assert "--input must be a JSON object" in capsys.readouterr().err


def test_flags_fall_back_to_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["run", "wf.json"])
    assert (runtime_config(args).db, args.timeout, args.quiet) == (
        Path("graph_runtime.db"),
        None,
        False,
    )
    monkeypatch.setenv("GRAPH_RUNTIME_DB", "/tmp/x.db")
    monkeypatch.setenv("GRAPH_RUNTIME_TIMEOUT", "2.5")
    monkeypatch.setenv("GRAPH_RUNTIME_QUIET", "yes")
    args = build_parser().parse_args(["run", "wf.json"])
    assert (runtime_config(args).db, args.timeout, args.quiet) == (Path("/tmp/x.db"), 2.5, True)
    args = build_parser().parse_args(["run", "wf.json", "--db", "y.db"])
    assert runtime_config(args).db == Path("y.db")
    monkeypatch.setenv("GRAPH_RUNTIME_TIMEOUT", "-1")
    assert main(["run", "wf.json"]) == 2
    assert "must be greater than 0" in capsys.readouterr().err
    monkeypatch.setenv("GRAPH_RUNTIME_TIMEOUT", "1")
    monkeypatch.setenv("GRAPH_RUNTIME_MAX_CONCURRENT_RUNS", "many")
    assert main(["run", ROUTING]) == 2
    assert "invalid setting: max_concurrent_runs" in capsys.readouterr().err
