"""The RunStore contract: every backend passes these tests unchanged (STYLE.md §22)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from checkpoints.sqlite import SqliteRunStore
from checkpoints.storage import open_runtime_storage
from checkpoints.store import LogRecord, RunRecord, RunStore
from graph_runtime.errors import (
    ConflictError,
    InvalidTransition,
    RunNotFound,
    StoreError,
    WorkflowNotFound,
)
from graph_runtime.models import (
    TRANSITIONS,
    ErrorCode,
    Event,
    EventType,
    TaskStatus,
    TaskStepResult,
    utcnow,
)

S = TaskStatus

# "postgres" joins this list with checkpoints/postgres.py: add a branch to `store` below that
# opens a PostgresRunStore on a per-test database cloned from the migrated template.
# "sqlite-shared" is the SQLite store committing through FastSqliteSaver's writer (what the
# Runtime uses with the default checkpointer).
BACKENDS = ["sqlite", "sqlite-shared"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    if request.param == "sqlite":
        async with SqliteRunStore.open(tmp_path / "runs.db") as sqlite_store:
            yield sqlite_store
    elif request.param == "sqlite-shared":
        async with open_runtime_storage(tmp_path / "runs.db") as storage:
            assert storage.shared_commits
            yield storage.store
    else:  # pragma: no cover -- a backend listed in BACKENDS without a branch here
        raise AssertionError(f"no fixture for backend {request.param}")


def make_run(run_id: str = "run-1", **fields: Any) -> RunRecord:
    now = fields.pop("created_at", None) or utcnow()
    values: dict[str, Any] = dict(workflow_id="wf", workflow_version=1, thread_id=f"t-{run_id}")
    values.update(status=S.PENDING, priority=5, input={"ticket": "refund", "n": 42})
    values.update(metadata={"source": "test"}, timeout_seconds=30.0)
    values.update(fields)
    return RunRecord(run_id=run_id, created_at=now, updated_at=now, **values)


def status_event(run_id: str, event_id: int, new: TaskStatus) -> Event:
    return Event(run_id=run_id, id=event_id, type=EventType.STATUS, data={"new": new.value})


async def create(store: RunStore, run_id: str = "run-1", **fields: Any) -> RunRecord:
    run, created = await store.create_run(
        make_run(run_id, **fields), status_event(run_id, 1, S.PENDING)
    )
    assert created
    return run


async def move(store: RunStore, run_id: str, new: TaskStatus, **fields: Any) -> RunRecord:
    event = status_event(run_id, await store.last_event_id(run_id) + 1, new)
    return await store.transition(run_id, new, event, **fields)


def path_to(target: TaskStatus) -> list[TaskStatus]:
    """The shortest legal path of statuses from pending to ``target`` (pending excluded)."""
    paths: dict[TaskStatus, list[TaskStatus]] = {S.PENDING: []}
    todo = deque([S.PENDING])
    while todo:
        current = todo.popleft()
        for nxt in sorted(TRANSITIONS[current]):
            if nxt not in paths:
                paths[nxt] = [*paths[current], nxt]
                todo.append(nxt)
    return paths[target]


FAILED: dict[str, Any] = {
    "status": S.FAILED,
    "completed": False,
    "error_code": ErrorCode.EXECUTION_ERROR,
    "error_message": "bad",
}


def step(name: str = "classify", **fields: Any) -> TaskStepResult:
    values: dict[str, Any] = {"status": S.COMPLETED, "completed": True, "result": {"x": 1}}
    values.update(fields)
    return TaskStepResult(step=name, **values)


async def test_put_workflow_versions_and_is_idempotent(store: RunStore) -> None:
    v1 = await store.put_workflow("wf", {"nodes": [1]}, "hash-a")
    again = await store.put_workflow("wf", {"nodes": [1]}, "hash-a")
    v2 = await store.put_workflow("wf", {"nodes": [1, 2]}, "hash-b")
    back_to_a = await store.put_workflow("wf", {"nodes": [1]}, "hash-a")
    assert (v1.version, again.version, v2.version, back_to_a.version) == (1, 1, 2, 3)
    assert again == v1
    assert v2.definition == {"nodes": [1, 2]} and v2.content_hash == "hash-b"
    assert await store.workflow_versions("wf") == [1, 2, 3]
    assert await store.get_workflow("wf") == back_to_a
    assert await store.get_workflow("wf", 2) == v2


async def test_workflow_lookups(store: RunStore) -> None:
    await store.put_workflow("b", {"v": 1}, "h1")
    await store.put_workflow("a", {"v": 1}, "h1")
    await store.put_workflow("a", {"v": 2}, "h2")
    latest = await store.list_workflows()
    assert [(w.workflow_id, w.version) for w in latest] == [("a", 2), ("b", 1)]
    assert await store.workflow_versions("missing") == []
    with pytest.raises(WorkflowNotFound):
        await store.get_workflow("missing")
    with pytest.raises(WorkflowNotFound):
        await store.get_workflow("a", 3)


async def test_concurrent_puts_of_one_definition_store_one_version(store: RunStore) -> None:
    stored = await asyncio.gather(*(store.put_workflow("wf", {"a": 1}, "h") for _ in range(10)))
    assert {w.version for w in stored} == {1}
    assert await store.workflow_versions("wf") == [1]


async def test_create_and_get_run_round_trips(store: RunStore) -> None:
    run = make_run(metadata={"k": [1, 2]}, result=None, priority=9)
    created, is_new = await store.create_run(run, status_event(run.run_id, 1, S.PENDING))
    assert is_new
    assert created == run
    assert await store.get_run(run.run_id) == run
    assert await store.run_status(run.run_id) is S.PENDING
    assert [e.id for e in await store.events_after(run.run_id)] == [1]
    with pytest.raises(RunNotFound):
        await store.get_run("nope")
    with pytest.raises(RunNotFound):
        await store.run_status("nope")
    await move(store, run.run_id, S.RUNNING)
    assert await store.run_status(run.run_id) is S.RUNNING


async def test_create_run_is_idempotent_on_the_run_id(store: RunStore) -> None:
    first = await create(store)
    other = make_run("run-1", workflow_id="another", input={"different": True})
    again, is_new = await store.create_run(other, status_event("run-1", 1, S.PENDING))
    assert not is_new
    assert again == first
    assert await store.last_event_id("run-1") == 1


async def test_twenty_concurrent_creates_of_one_id_make_one_run(store: RunStore) -> None:
    runs = [make_run("same", priority=i % 10 + 1) for i in range(20)]
    results = await asyncio.gather(
        *(store.create_run(r, status_event("same", 1, S.PENDING)) for r in runs)
    )
    assert sum(is_new for _, is_new in results) == 1
    assert len({rec.priority for rec, _ in results}) == 1  # every caller sees the winner
    assert len(await store.events_after("same")) == 1
    assert len(await store.list_runs()) == 1


async def test_a_run_created_started_is_running_with_both_events(store: RunStore) -> None:
    now = utcnow()
    run = make_run(status=S.RUNNING, owner="me", attempts=1, started_at=now, created_at=now)
    created, is_new = await store.create_run(
        run, status_event("run-1", 1, S.PENDING), started=status_event("run-1", 2, S.RUNNING)
    )
    assert is_new and created == run == await store.get_run("run-1")
    events = await store.events_after("run-1")
    assert [(e.id, e.data["new"]) for e in events] == [(1, "pending"), (2, "running")]
    await move(store, "run-1", S.COMPLETED)
    # Created again: the stored run, nothing written.
    again, is_new = await store.create_run(
        run, status_event("run-1", 1, S.PENDING), started=status_event("run-1", 2, S.RUNNING)
    )
    assert not is_new and again.status is S.COMPLETED
    assert await store.last_event_id("run-1") == 3


async def test_create_run_refuses_bad_input(store: RunStore) -> None:
    with pytest.raises(ValueError, match="pending"):
        await store.create_run(make_run(status=S.RUNNING), status_event("run-1", 1, S.RUNNING))
    with pytest.raises(ValueError, match="running"):
        await store.create_run(
            make_run(),
            status_event("run-1", 1, S.PENDING),
            started=status_event("run-1", 2, S.RUNNING),
        )
    with pytest.raises(ValueError, match="given for run"):
        await store.create_run(
            make_run("a", status=S.RUNNING),
            status_event("a", 1, S.PENDING),
            started=status_event("b", 2, S.RUNNING),
        )
    with pytest.raises(ValueError, match="given for run"):
        await store.create_run(make_run("a"), status_event("b", 1, S.PENDING))
    with pytest.raises(RunNotFound):
        await store.get_run("a")


async def test_list_runs_filters_and_pages(store: RunStore) -> None:
    start = utcnow()
    for i in range(6):
        created_at = start + dt.timedelta(seconds=i)
        await create(
            store, f"r{i}", workflow_id="even" if i % 2 == 0 else "odd", created_at=created_at
        )
    await move(store, "r1", S.RUNNING)
    await move(store, "r2", S.CANCELLED)
    assert [r.run_id for r in await store.list_runs()] == [f"r{i}" for i in range(6)]
    assert [r.run_id for r in await store.list_runs(limit=2, offset=3)] == ["r3", "r4"]
    pending = await store.list_runs(status={S.PENDING})
    assert [r.run_id for r in pending] == ["r0", "r3", "r4", "r5"]
    both = await store.list_runs(status=[S.RUNNING, S.CANCELLED])
    assert [r.run_id for r in both] == ["r1", "r2"]
    assert [r.run_id for r in await store.list_runs(workflow_id="odd")] == ["r1", "r3", "r5"]
    odd_pending = await store.list_runs(status={S.PENDING}, workflow_id="odd")
    assert [r.run_id for r in odd_pending] == ["r3", "r5"]
    assert await store.list_runs(status=()) == []
    with pytest.raises(ValueError):
        await store.list_runs(limit=-1)


async def test_transition_writes_status_fields_and_event_together(store: RunStore) -> None:
    await create(store)
    running = await move(store, "run-1", S.RUNNING, owner="proc-1", attempts=1)
    assert running.status is S.RUNNING and running.owner == "proc-1" and running.attempts == 1
    assert running.started_at is not None and running.finished_at is None
    paused = await move(store, "run-1", S.PAUSED)
    resumed = await move(store, "run-1", S.RUNNING)
    assert resumed.started_at == running.started_at  # set the first time only
    done = await move(
        store, "run-1", S.COMPLETED, result={"answer": 42}, progress=1.0, current_node=None
    )
    assert done.finished_at is not None and done.result == {"answer": 42}
    assert await store.get_run("run-1") == done
    assert done.updated_at >= paused.updated_at >= running.updated_at
    events = await store.events_after("run-1")
    assert [e.data["new"] for e in events] == [
        "pending",
        "running",
        "paused",
        "running",
        "completed",
    ]
    response = done.to_response("finished")
    assert (response.task_id, response.status, response.progress) == ("run-1", S.COMPLETED, 1.0)
    assert response.result == {"answer": 42} and response.message == "finished"


async def test_transition_stores_error_code(store: RunStore) -> None:
    await create(store)
    await move(store, "run-1", S.RUNNING)
    failed = await move(
        store, "run-1", S.FAILED, error="boom", error_code=ErrorCode.RETRY_EXHAUSTED
    )
    assert (await store.get_run("run-1")).error_code is ErrorCode.RETRY_EXHAUSTED
    assert failed.to_response().error == "boom"


async def test_expected_status_is_compare_and_set(store: RunStore) -> None:
    await create(store)
    await move(store, "run-1", S.RUNNING)
    with pytest.raises(InvalidTransition) as info:
        await store.transition(
            "run-1", S.RUNNING, status_event("run-1", 3, S.RUNNING), expected={S.PAUSED}
        )
    assert info.value.current is S.RUNNING and info.value.target is S.RUNNING
    assert (await store.get_run("run-1")).status is S.RUNNING
    assert await store.last_event_id("run-1") == 2  # the refused change wrote no event


async def test_ten_concurrent_transitions_of_one_run_one_wins(store: RunStore) -> None:
    await create(store)
    await move(store, "run-1", S.RUNNING)
    targets = [S.PAUSED, S.STOPPING, S.COMPLETED, S.FAILED, S.TIMED_OUT] * 2
    outcomes = await asyncio.gather(
        *(
            store.transition("run-1", t, status_event("run-1", 3 + i, t), expected={S.RUNNING})
            for i, t in enumerate(targets)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, RunRecord)]
    assert len(winners) == 1
    assert all(isinstance(o, InvalidTransition) for o in outcomes if o is not winners[0])
    assert (await store.get_run("run-1")).status is winners[0].status
    assert len(await store.events_after("run-1")) == 3


async def test_every_illegal_transition_is_refused(store: RunStore) -> None:
    illegal = [(cur, new) for cur in S for new in S if new not in TRANSITIONS[cur]]

    async def attempt(index: int, current: TaskStatus, new: TaskStatus) -> None:
        run_id = f"r{index}"
        await create(store, run_id)
        for status in path_to(current):
            await move(store, run_id, status)
        before = await store.last_event_id(run_id)
        with pytest.raises(InvalidTransition):
            await move(store, run_id, new)
        assert (await store.get_run(run_id)).status is current
        assert await store.last_event_id(run_id) == before

    await asyncio.gather(*(attempt(i, cur, new) for i, (cur, new) in enumerate(illegal)))


async def test_every_legal_transition_is_accepted(store: RunStore) -> None:
    legal = [(cur, new) for cur in S for new in sorted(TRANSITIONS[cur])]

    async def attempt(index: int, current: TaskStatus, new: TaskStatus) -> None:
        run_id = f"r{index}"
        await create(store, run_id)
        for status in [*path_to(current), new]:
            record = await move(store, run_id, status)
        assert record.status is new and (record.finished_at is not None) == new.is_terminal

    await asyncio.gather(*(attempt(i, cur, new) for i, (cur, new) in enumerate(legal)))


async def test_transition_refusals(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        await store.transition("nope", S.RUNNING, status_event("nope", 2, S.RUNNING))
    await create(store)
    with pytest.raises(TypeError):
        await move(store, "run-1", S.RUNNING, no_such_field=1)
    with pytest.raises(TypeError):
        await move(store, "run-1", S.RUNNING, created_at=utcnow())
    with pytest.raises(ConflictError):  # event id 1 is the create event
        await store.transition("run-1", S.RUNNING, status_event("run-1", 1, S.RUNNING))
    assert (await store.get_run("run-1")).status is S.PENDING


async def test_update_run_changes_fields_not_status(store: RunStore) -> None:
    created = await create(store)
    await store.update_run("run-1", progress=0.5, current_node="classify", metadata={"m": 1})
    run = await store.get_run("run-1")
    assert (run.progress, run.current_node, run.metadata) == (0.5, "classify", {"m": 1})
    assert run.status is S.PENDING and run.updated_at >= created.updated_at
    with pytest.raises(TypeError):
        await store.update_run("run-1", status=S.RUNNING)
    with pytest.raises(RunNotFound):
        await store.update_run("nope", progress=0.1)


async def test_record_is_idempotent_on_replay(store: RunStore) -> None:
    await create(store)
    events = [Event(run_id="run-1", id=i, type=EventType.STEP, data={"i": i}) for i in (2, 3)]
    steps = [
        step("a", task_id="t-a", seq=1),
        step("b", task_id="t-b", seq=2, attempt=1, **FAILED),
        step("b", task_id="t-b", seq=3, attempt=2),
        step("manual", seq=4),
    ]
    logs = [LogRecord(run_id="run-1", level="info", message="hello", node_id="a")]
    for _ in range(3):
        await store.record("run-1", events=events, steps=steps, logs=logs[:1])
        logs = await store.logs("run-1")  # a replay of a stored log carries its id
    assert [e.id for e in await store.events_after("run-1")] == [1, 2, 3]
    stored = await store.steps("run-1")
    expected = [("a", 1, 1), ("b", 2, 1), ("b", 3, 2), ("manual", 4, 1)]
    assert [(s.step, s.seq, s.attempt) for s in stored] == expected
    assert stored[1] == steps[1].model_copy(update={"run_id": "run-1"})
    assert await store.step_keys("run-1") == {("t-a", 1), ("t-b", 1), ("t-b", 2)}
    assert len(await store.logs("run-1")) == 1


async def test_step_replayed_with_another_seq_is_still_one_step(store: RunStore) -> None:
    await create(store)
    await store.record("run-1", steps=[step("a", task_id="t1", seq=1)])
    await store.record("run-1", steps=[step("a", task_id="t1", seq=7)])  # e.g. after a resume
    await store.record("run-1", steps=[step("b", task_id="t2", seq=1)])  # new task, same seq
    assert [(s.task_id, s.seq) for s in await store.steps("run-1")] == [("t1", 1), ("t2", 1)]


async def test_steps_without_seq_are_numbered_in_order(store: RunStore) -> None:
    await create(store)
    await store.record("run-1", steps=[step("a", task_id="t1"), step("b", task_id="t2")])
    await store.record("run-1", steps=[step("c", task_id="t3")])
    assert [(s.step, s.seq) for s in await store.steps("run-1")] == [("a", 1), ("b", 2), ("c", 3)]


async def test_record_refusals(store: RunStore) -> None:
    await create(store)
    with pytest.raises(RunNotFound):
        await store.record("nope", steps=[step()])
    with pytest.raises(ValueError):
        await store.record("run-1", events=[Event(run_id="other", id=5, type=EventType.END)])
    with pytest.raises(ValueError):
        await store.record("run-1", logs=[LogRecord(run_id="run-1", level="loud", message="x")])
    await store.record("run-1")  # nothing to do is fine
    assert await store.steps("run-1") == []


async def test_a_bad_record_fails_alone_among_concurrent_ones(store: RunStore) -> None:
    for i in range(5):
        await create(store, f"r{i}")
    calls = [store.record(f"r{i}", steps=[step(task_id=f"t{i}")]) for i in range(5)]
    calls.insert(2, store.record("ghost", steps=[step(task_id="tg")]))
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes.pop(2), RunNotFound)
    assert outcomes == [None] * 5
    for i in range(5):
        assert len(await store.steps(f"r{i}")) == 1


async def test_events_after_orders_and_pages(store: RunStore) -> None:
    await create(store)
    later = [
        Event(run_id="run-1", id=i, type=EventType.CUSTOM, data={"i": i}) for i in range(9, 1, -1)
    ]
    await store.record("run-1", events=later)  # stored out of order, read back in order
    assert await store.last_event_id("run-1") == 9
    assert [e.id for e in await store.events_after("run-1")] == list(range(1, 10))
    assert [e.id for e in await store.events_after("run-1", after=4, limit=3)] == [5, 6, 7]
    assert await store.events_after("run-1", after=9) == []
    assert (await store.events_after("run-1", after=8))[0].data == {"i": 9}
    assert await store.last_event_id("no-run") == 0 and await store.events_after("no-run") == []


async def test_logs_filter_by_minimum_level_and_page(store: RunStore) -> None:
    await create(store)
    levels = ["debug", "info", "Warn", "error", "critical", "info"]
    await store.record(
        "run-1",
        logs=[LogRecord(run_id="run-1", level=lv, message=f"m{i}") for i, lv in enumerate(levels)],
    )
    every = await store.logs("run-1")
    assert [log.message for log in every] == [f"m{i}" for i in range(6)]
    assert [log.level for log in every][2] == "warning"
    assert [log.message for log in await store.logs("run-1", level="warning")] == ["m2", "m3", "m4"]
    assert [log.message for log in await store.logs("run-1", level="ERROR")] == ["m3", "m4"]
    page = await store.logs("run-1", limit=2, after=every[1].id)
    assert [log.message for log in page] == ["m2", "m3"]
    with pytest.raises(ValueError):
        await store.logs("run-1", level="loud")


async def test_delete_run_removes_everything(store: RunStore) -> None:
    await create(store, "keep")
    await create(store)
    for run_id in ("keep", "run-1"):
        await store.record(
            run_id,
            events=[Event(run_id=run_id, id=2, type=EventType.END)],
            steps=[step(task_id="t")],
            logs=[LogRecord(run_id=run_id, level="info", message="x")],
        )
    await store.delete_run("run-1")
    with pytest.raises(RunNotFound):
        await store.get_run("run-1")
    assert await store.events_after("run-1") == [] and await store.steps("run-1") == []
    assert await store.logs("run-1") == [] and await store.step_keys("run-1") == set()
    with pytest.raises(RunNotFound):
        await store.delete_run("run-1")
    assert len(await store.steps("keep")) == 1 and await store.last_event_id("keep") == 2
    await create(store)  # the id is free again, and its old rows do not come back
    assert await store.steps("run-1") == []


async def test_closed_store_refuses_calls(store: RunStore) -> None:
    await create(store)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError) as info:
        await store.get_run("run-1")
    assert info.value.code is ErrorCode.DATABASE_ERROR
    with pytest.raises(StoreError):
        await store.record("run-1", steps=[step()])


async def test_count_runs_by_status(store: RunStore) -> None:
    assert await store.count_runs() == {}
    for run_id in ("a", "b", "c"):
        await create(store, run_id)
    await move(store, "c", TaskStatus.RUNNING)
    assert await store.count_runs() == {TaskStatus.PENDING: 2, TaskStatus.RUNNING: 1}
