from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.workflows import SIX, SLOW

from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import ConflictError, InvalidTransition, RunNotFound
from graph_runtime.models import ErrorCode, EventType, TaskStatus
from graph_runtime.runtime import Runtime


@pytest.fixture
async def rt(tmp_path: Path) -> Any:
    async with Runtime(
        tmp_path / "runs.db", config=RuntimeConfig(shutdown_grace_seconds=0.2)
    ) as runtime:
        yield runtime


async def wait_for_status(
    rt: Runtime, run_id: str, *statuses: TaskStatus, timeout: float = 5
) -> None:
    deadline = time.monotonic() + timeout
    while (await rt.get_run(run_id)).status not in statuses:
        assert time.monotonic() < deadline, f"run {run_id} never reached {statuses}"
        await asyncio.sleep(0.01)


async def test_pause_and_resume_at_every_superstep_gives_the_same_result(rt: Runtime) -> None:
    baseline = await rt.run(SIX, {}, run_id="base")
    assert baseline.result == {"trail": ["a", "b", "c", "d"], "n": 4}
    for k in range(1, 6):
        run_id = f"p{k}"
        pauses = 0
        paused_after: list[int] = []
        record = await rt.submit(SIX, {}, run_id=run_id)
        # Pause as soon as the k-th step record is out, then resume; repeat until done.
        async for event in rt.events(record.run_id, follow=True):
            if event.type is EventType.STEP and event.data["seq"] % k == 0 and pauses < 6:
                try:
                    await rt.pause(run_id)
                    pauses += 1
                except (InvalidTransition, ConflictError):
                    pass
            if event.type is EventType.STATUS and event.data["new"] == "paused":
                paused_after.append(len(await rt.steps(run_id)))
                await rt.resume(run_id)
            if event.type is EventType.END:
                break
        response = await rt.status(run_id)
        assert response.status is TaskStatus.COMPLETED, response
        assert response.result == baseline.result
        steps = await rt.steps(run_id)
        assert [s.step for s in steps] == ["start", "a", "b", "c", "d", "out"]  # nothing re-ran
        assert paused_after, "the run never paused"


async def test_stop_inside_a_wait_node_ends_within_a_second(rt: Runtime) -> None:
    record = await rt.submit(SLOW, {"seconds": 30, "tag": "x"}, run_id="s1")
    await wait_for_status(rt, "s1", TaskStatus.RUNNING)
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await rt.stop(record.run_id)
    response = await rt.wait("s1", timeout=5)
    assert time.monotonic() - started < 1.0
    assert response.status is TaskStatus.STOPPED
    cut = (await rt.steps("s1"))[-1]
    assert cut.step == "nap" and cut.error_code is ErrorCode.CANCELLED_ERROR
    with pytest.raises(InvalidTransition):
        await rt.stop("s1")  # late: already stopped
    events = [e async for e in rt.events("s1")]
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type is EventType.END and events[-1].data["status"] == "stopped"


async def test_priority_order_under_a_cap_of_one(tmp_path: Path) -> None:
    async with Runtime(tmp_path / "p.db", max_concurrent_runs=1) as rt:
        await rt.submit(SLOW, {"seconds": 0.3, "tag": "blocker"}, run_id="blocker")
        await wait_for_status(rt, "blocker", TaskStatus.RUNNING)
        for i, prio in enumerate([1, 5, 10, 5, 1, 10]):
            await rt.submit(
                SLOW, {"seconds": 0, "tag": f"{prio}-{i}"}, run_id=f"q{i}", priority=prio
            )
        for i in range(6):
            await rt.wait(f"q{i}", timeout=10)
        records = [await rt.get_run(f"q{i}") for i in range(6)]
        started = sorted(records, key=lambda r: r.started_at)  # type: ignore[arg-type, return-value]
        assert [r.run_id for r in started] == ["q2", "q5", "q1", "q3", "q0", "q4"]


async def test_same_run_id_never_runs_twice(rt: Runtime) -> None:
    results = await asyncio.gather(*(rt.submit(SIX, {}, run_id="same") for _ in range(10)))
    assert {r.run_id for r in results} == {"same"}
    await rt.wait("same", timeout=5)
    steps = await rt.steps("same")
    assert [s.step for s in steps] == ["start", "a", "b", "c", "d", "out"]


async def test_controls_are_compare_and_set(rt: Runtime) -> None:
    await rt.submit(SLOW, {"seconds": 30, "tag": "x"}, run_id="c1")
    await wait_for_status(rt, "c1", TaskStatus.RUNNING)
    with pytest.raises(InvalidTransition):
        await rt.resume("c1")  # not paused
    with pytest.raises(InvalidTransition):
        await rt.cancel("c1")  # already started: stop it instead
    await rt.pause("c1")
    with pytest.raises(ConflictError):
        await rt.pause("c1")  # duplicate
    await rt.stop("c1")
    assert (await rt.wait("c1", timeout=5)).status is TaskStatus.STOPPED
    with pytest.raises(RunNotFound):
        await rt.pause("nope")


async def test_concurrent_resumes_resume_once(rt: Runtime) -> None:
    wf = {**SIX, "id": "six-bp", "settings": {"breakpoints": {"before": ["c"]}}}
    response = await rt.run(wf, {}, run_id="r")
    assert response.status is TaskStatus.PAUSED
    outcomes = await asyncio.gather(*(rt.resume("r") for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(
        isinstance(o, (InvalidTransition, ConflictError))
        for o in outcomes
        if isinstance(o, BaseException)
    )
    assert (await rt.wait("r", timeout=5)).result == {"trail": ["a", "b", "c", "d"], "n": 4}


async def test_cancel_a_pending_run(tmp_path: Path) -> None:
    async with Runtime(tmp_path / "c.db", max_concurrent_runs=1) as rt:
        await rt.submit(SLOW, {"seconds": 0.3, "tag": "a"}, run_id="first")
        await rt.submit(SLOW, {"seconds": 0, "tag": "b"}, run_id="second")
        record = await rt.cancel("second")
        assert (
            record.status is TaskStatus.CANCELLED and record.error_code is ErrorCode.CANCELLED_ERROR
        )
        await rt.wait("first", timeout=5)
        await asyncio.sleep(0.05)
        assert (await rt.get_run("second")).status is TaskStatus.CANCELLED
        assert await rt.steps("second") == []


async def test_runs_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    async with Runtime(db) as rt:
        await rt.submit(SLOW, {"seconds": 0.5, "tag": "survivor"}, run_id="long")
        await wait_for_status(rt, "long", TaskStatus.RUNNING)
        # Leaving the context drains the run at its next boundary; it stays `running`.
    async with Runtime(db) as rt:
        response = await rt.wait("long", timeout=10)
        assert response.status is TaskStatus.COMPLETED
        assert response.result == {"tag": "survivor"}
        statuses = [e.data["new"] async for e in rt.events("long") if e.type is EventType.STATUS]
        # Drained at shutdown, resumed at start-up: never called crashed.
        assert statuses == ["pending", "running", "completed"]


async def test_a_stop_right_after_submit_is_never_refused(rt: Runtime) -> None:
    # The worker may be picking the run up at that very moment (still `pending` for a few
    # milliseconds): the stop must wait for it, not answer 409 and let the run carry on.
    for i in range(20):
        await rt.submit(SLOW, {"seconds": 30, "tag": "x"}, run_id=f"quick{i}")
        await asyncio.sleep(0.001 * (i % 4))
        await rt.stop(f"quick{i}")
        response = await rt.wait(f"quick{i}", timeout=5)
        assert response.status in (TaskStatus.CANCELLED, TaskStatus.STOPPED), response


async def test_a_run_with_a_free_worker_is_stored_running_in_one_commit(rt: Runtime) -> None:
    await rt.save_workflow(SLOW)
    writer = rt.store._writer  # type: ignore[attr-defined]
    commits = writer.commits
    record = await rt.submit("slow", {"seconds": 0, "tag": "now"}, run_id="now")
    assert writer.commits == commits + 1  # created and started together
    assert record.status is TaskStatus.RUNNING and record.attempts == 1
    assert record.owner is not None and record.started_at == record.created_at
    response = await rt.wait("now", timeout=5)
    assert response.status is TaskStatus.COMPLETED and response.result == {"tag": "now"}
    events = await rt.store.events_after("now", 0)
    statuses = [(e.id, e.data["old"], e.data["new"]) for e in events if e.type is EventType.STATUS]
    assert statuses[:2] == [(1, None, "pending"), (2, "pending", "running")]
    assert [s.step for s in await rt.steps("now")] == ["start", "nap", "out"]


async def test_concurrent_submits_never_start_more_runs_than_workers(tmp_path: Path) -> None:
    async with Runtime(tmp_path / "cap.db", max_concurrent_runs=2) as rt:
        await rt.save_workflow(SLOW)
        records = await asyncio.gather(
            *(rt.submit("slow", {"seconds": 0.2, "tag": str(i)}, run_id=f"r{i}") for i in range(6))
        )
        started = [r.run_id for r in records if r.status is TaskStatus.RUNNING]
        assert len(started) <= 2
        assert all(r.status is TaskStatus.PENDING for r in records if r.run_id not in started)
        for i in range(6):
            assert (await rt.wait(f"r{i}", timeout=10)).result == {"tag": str(i)}
        runs = [await rt.get_run(f"r{i}") for i in range(6)]
        # Never more than two at once: every run starts after all but one of those before it
        # ended.
        spans = sorted((r.started_at, r.finished_at) for r in runs)  # type: ignore[type-var]
        for i, (start, _) in enumerate(spans):
            overlapping = sum(1 for s, f in spans[:i] if f > start)  # type: ignore[operator]
            assert overlapping <= 1, spans
