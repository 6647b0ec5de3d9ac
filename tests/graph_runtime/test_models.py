from __future__ import annotations

import datetime as dt

import pydantic
import pytest

import graph_runtime
from checkpoints.store import step_to_row
from graph_runtime._records import new_event, record_of, step_parts, step_values, step_view
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
    Event,
    EventType,
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


def _step_fields(**over: object) -> dict[str, object]:
    now = dt.datetime.now(dt.UTC)
    fields: dict[str, object] = {
        "step": "calc",
        "result": {"n": 1},
        "status": TaskStatus.COMPLETED,
        "message": "calc completed",
        "error_code": None,
        "error_message": None,
        "run_id": "r1",
        "seq": 1,
        "task_id": "t1",
        "node_type": "transform",
        "attempt": 1,
        "started_at": now,
        "finished_at": now,
        "duration_ms": 0.5,
    }
    return {**fields, **over}


@pytest.mark.parametrize(
    "over",
    [
        {},
        {
            "status": TaskStatus.FAILED,
            "error_code": ErrorCode.EXECUTION_ERROR,
            "error_message": "x",
        },
        {
            "status": TaskStatus.TIMED_OUT,
            "error_code": ErrorCode.TIMEOUT_ERROR,
            "error_message": "t",
        },
        {"task_id": None, "node_type": None, "run_id": None},
    ],
)
def test_unvalidated_step_records_equal_validated_ones(over: dict[str, object]) -> None:
    fields = _step_fields(**over)
    fast = record_of(step_values(**fields))  # type: ignore[arg-type]
    checked = TaskStepResult(**fields, completed=fields["status"] is TaskStatus.COMPLETED)
    assert fast == checked and repr(fast) == repr(checked)
    assert fast.dict() == checked.dict() and TaskStepResult.from_dict(fast.dict()) == checked


@pytest.mark.parametrize(
    "over",
    [
        {"attempt": 0},
        {"seq": 0},
        {"duration_ms": -1.0},
        {
            "status": TaskStatus.COMPLETED,
            "error_code": ErrorCode.TIMEOUT_ERROR,
            "error_message": "x",
        },
        {"status": TaskStatus.FAILED, "error_code": ErrorCode.EXECUTION_ERROR},
        {"status": "failed", "error_code": "E999", "error_message": "x"},
    ],
)
def test_step_records_the_fast_path_cannot_trust_are_validated(over: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        record_of(step_values(**_step_fields(**over)))  # type: ignore[arg-type]


def test_a_value_validation_would_coerce_is_coerced() -> None:
    record = record_of(step_values(**_step_fields(duration_ms=2, status="completed")))  # type: ignore[arg-type]
    assert record.duration_ms == 2.0 and type(record.duration_ms) is float
    assert record.status is TaskStatus.COMPLETED and record.completed


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"result": None},
        {"result": {"a": [1, 2.5, "x", None, True, {"b": []}]}},
        {"result": {"a": [[{"b": [1]}], {"c": {"d": [2.5]}}]}},
        {"result": {"a": [1, [float("inf")]]}},
        {"result": {"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}},  # serialized
        {"result": {"pair": (1, 2)}},  # a tuple: the serializer makes it a list
        {"result": {"n": float("nan")}},
        {"result": {1: "int key"}},
        {"started_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},  # no microseconds
        {"started_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        {
            "status": TaskStatus.FAILED,
            "error_code": ErrorCode.EXECUTION_ERROR,
            "error_message": "x",
        },
    ],
)
def test_step_view_is_the_records_dict(over: dict[str, object]) -> None:
    record = record_of(step_values(**_step_fields(**over)))  # type: ignore[arg-type]
    view = step_view(record)
    assert view == record.dict() and list(view) == list(record.dict())
    if isinstance(record.result, dict):
        # New containers all the way down, as the serializer makes.
        assert not _shared_containers(view["result"], record.result)


def _shared_containers(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a is b or any(_shared_containers(a.get(k), v) for k, v in b.items())
    if isinstance(a, list) and isinstance(b, list):
        return a is b or any(_shared_containers(x, y) for x, y in zip(a, b, strict=True))
    return False


@pytest.mark.parametrize(
    ("over", "short"),
    [
        ({}, True),
        ({"result": None}, True),
        ({"result": {"a": [1, 2.5, "x", None, True, {"b": []}]}}, True),
        ({"started_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}, True),
        ({"finished_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}, True),
        ({"started_at": dt.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=dt.UTC)}, True),
        (
            {
                "status": TaskStatus.FAILED,
                "error_code": ErrorCode.EXECUTION_ERROR,
                "error_message": "x",
            },
            True,
        ),
        ({"task_id": None}, True),
        # The long way: the record is built (validated, coerced, serialized by pydantic).
        ({"result": {"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}}, False),
        ({"result": {"pair": (1, 2)}}, False),
        ({"result": {"n": float("nan")}}, False),
        ({"result": {1: "int key"}}, False),
        (
            {
                "started_at": dt.datetime(
                    2026, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))
                )
            },
            False,
        ),
        ({"duration_ms": 2}, False),
        ({"status": "completed"}, False),
    ],
)
def test_step_parts_are_the_view_and_row_of_the_record(
    over: dict[str, object], short: bool
) -> None:
    fields = _step_fields(**over)
    values = step_values(**fields)  # type: ignore[arg-type]
    parts = step_parts(values)
    assert (parts is not None) is short
    if parts is None:
        return
    record = record_of(step_values(**fields))  # type: ignore[arg-type]
    view, row = parts
    assert view == step_view(record) and list(view) == list(record.dict())
    assert row == step_to_row("r1", record) and list(row or ()) == list(step_to_row("r1", record))
    assert step_parts(values, row=False) == (view, None)


def test_unvalidated_events_equal_validated_ones() -> None:
    now = dt.datetime.now(dt.UTC)
    fast = new_event("r1", 3, EventType.STEP, {"a": 1}, now)
    assert fast == Event(run_id="r1", id=3, type=EventType.STEP, data={"a": 1}, created_at=now)
