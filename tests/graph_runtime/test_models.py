from __future__ import annotations

import datetime as dt

import pydantic
import pytest

import graph_runtime
from graph_runtime.errors import (
    GraphRuntimeError,
    InvalidTransition,
    Problem,
    WorkflowValidationError,
)
from graph_runtime.models import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    ErrorCode,
    TaskRequest,
    TaskStatus,
    TaskStepResult,
)
from graph_runtime.state_machine import check_transition


def test_error_codes_are_the_seed_codes() -> None:
    assert {c.name: c.value for c in ErrorCode} == {
        "VALIDATION_ERROR": "E001",
        "TIMEOUT_ERROR": "E002",
        "EXECUTION_ERROR": "E003",
        "CANCELLED_ERROR": "E004",
        "RETRY_EXHAUSTED": "E005",
        "DATABASE_ERROR": "E006",
        "DSL_EVALUATION_ERROR": "E007",
    }


def test_status_values_are_lowercase_strings() -> None:
    assert all(s.value == s.name.lower() for s in TaskStatus)
    assert TaskStatus("timed_out") is TaskStatus.TIMED_OUT


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("pending", "running"),
        ("pending", "cancelled"),
        ("running", "completed"),
        ("running", "failed"),
        ("running", "timed_out"),
        ("running", "paused"),
        ("running", "stopping"),
        ("running", "crashed"),
        ("paused", "running"),
        ("paused", "stopped"),
        ("stopping", "stopped"),
        ("crashed", "running"),
    ],
)
def test_legal_transitions(current: str, target: str) -> None:
    assert check_transition(TaskStatus(current), TaskStatus(target)) is TaskStatus(target)


def test_every_other_transition_is_refused() -> None:
    refused = 0
    for current in TaskStatus:
        for target in TaskStatus:
            if target in TRANSITIONS[current]:
                continue
            with pytest.raises(InvalidTransition) as info:
                check_transition(current, target)
            assert info.value.http_status == 409
            assert info.value.current is current and info.value.target is target
            refused += 1
    assert refused > 50
    for terminal in TERMINAL_STATUSES:
        assert not TRANSITIONS[terminal]
        assert terminal.is_terminal


def test_step_result_round_trip() -> None:
    now = dt.datetime.now(dt.UTC)
    record = TaskStepResult(
        step="pandas_tool.read_csv",
        result={"rows": 1000, "columns": 5},
        completed=True,
        message="Successfully read CSV file",
        status=TaskStatus.COMPLETED,
        run_id="r1",
        seq=3,
        node_type="tool",
        attempt=2,
        started_at=now,
        finished_at=now,
        duration_ms=1.5,
    )
    data = record.dict()
    assert data["status"] == "completed" and data["error_code"] is None
    assert TaskStepResult.from_dict(data) == record
    with pytest.raises(pydantic.ValidationError):
        record.step = "other"  # type: ignore[misc]
    assert "pandas_tool.read_csv" in str(record)


def test_failed_step_round_trip() -> None:
    record = TaskStepResult(
        step="x",
        status=TaskStatus.FAILED,
        error_code=ErrorCode.EXECUTION_ERROR,
        error_message="File not found: data.csv",
    )
    assert TaskStepResult.from_dict(record.dict()) == record
    assert record.dict()["error_code"] == "E003"


@pytest.mark.parametrize(
    "fields",
    [
        {"completed": True, "status": "failed"},
        {"completed": False, "status": "completed"},
        {"status": "failed", "error_code": "E003"},
        {"status": "failed", "error_message": "boom"},
        {"completed": True, "status": "completed", "error_code": "E003", "error_message": "x"},
        {"status": "failed", "error_code": "E999", "error_message": "x"},
        {"attempt": 0},
    ],
)
def test_step_result_consistency_rules(fields: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        TaskStepResult.model_validate({"step": "s", **fields})


def test_task_request_bounds() -> None:
    assert TaskRequest(task_type="wf").priority == 5
    for bad in (
        {"task_type": "wf", "priority": 0},
        {"task_type": "wf", "priority": 11},
        {"task_type": ""},
        {"task_type": "wf", "timeout_seconds": -1},
    ):
        with pytest.raises(pydantic.ValidationError):
            TaskRequest.model_validate(bad)


def test_error_tree() -> None:
    err = WorkflowValidationError([Problem(path="/nodes/0/type", message="unknown node type")])
    assert isinstance(err, GraphRuntimeError)
    assert err.code is ErrorCode.VALIDATION_ERROR and err.http_status == 422
    assert err.path == "/nodes/0/type"
    assert "/nodes/0/type" in str(err)
    assert err.problems[0].as_dict()["code"] == "E001"


def test_public_names_sorted_and_complete() -> None:
    assert graph_runtime.__all__ == sorted(graph_runtime.__all__)
    for name in graph_runtime.__all__:
        assert getattr(graph_runtime, name) is not None
