"""Runs on threads (``RunLaunch``): one run per thread at a time, recorded stream chunks,
commands, time travel and delayed starts, through the ``RunManager`` itself."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command, Interrupt, Send

from graph_runtime.config import RuntimeConfig
from graph_runtime.launch import RunLaunch, jsonable, stream_event_data, to_command
from graph_runtime.models import EventType, TaskStatus, utcnow
from graph_runtime.runtime import Runtime
from nodes.base import INPUT_KEY

SCHEMA = "graph-runtime/workflow/v1"

# start -> nap (input.seconds) -> count -> out: a counter that survives across runs.
COUNTER: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "counter",
    "state": {"n": {"type": "integer", "default": 0}},
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "nap", "type": "wait", "config": {"seconds": "default(input.seconds, 0)"}},
        {"id": "count", "type": "transform", "config": {"set": {"n": "state.n + 1"}}},
        {"id": "out", "type": "output", "config": {"select": {"n": "state.n"}}},
    ],
    "edges": [
        {"from": "start", "to": "nap"},
        {"from": "nap", "to": "count"},
        {"from": "count", "to": "out"},
    ],
}


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(
        tmp_path / "runs.db", config=RuntimeConfig(shutdown_grace_seconds=0.2)
    ) as runtime:
        await runtime.save_workflow(COUNTER)
        yield runtime


async def submit(rt: Runtime, thread_id: str, launch: RunLaunch, **input: Any) -> str:
    record, created = await rt.manager.submit(
        workflow_id="counter", version=1, input=input, thread_id=thread_id, launch=launch
    )
    assert created and record.thread_id == thread_id
    return record.run_id


def test_launch_round_trips_through_json() -> None:
    launch = RunLaunch(
        input={"a": 1},
        command={"resume": True},
        checkpoint_id="c",
        interrupt_before=("x", "y"),
        interrupt_after="*",
        stream_modes=("values", "debug"),
        durability="exit",
        recursion_limit=7,
        configurable={"k": "v"},
        metadata={"run_id": "r"},
        not_before=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        input_keys=("a",),
    )
    assert RunLaunch.from_dict(launch.to_dict()) == launch
    assert RunLaunch.of({"__launch__": launch.to_dict()}) == launch
    assert RunLaunch.of({}) is None
    assert launch.recorded_modes == {"values", "debug"}


def test_commands_and_json() -> None:
    assert to_command({"resume": 1, "goto": []}) == Command(resume=1)
    assert to_command({"goto": "a"}) == Command(goto="a")
    sends = to_command({"goto": [{"node": "a", "input": {"x": 1}}, "b"]})
    assert sends.goto == [Send("a", {"x": 1}), "b"]
    assert to_command({"update": [["k", 1]]}).update == [("k", 1)]
    value = {
        "i": (Interrupt(value={"q": 1}, id="x"),),
        "nan": math.nan,
        "when": dt.date(2030, 1, 2),
        "msg": AIMessage(content="hi", id="m"),
        "set": {1},
    }
    out = jsonable(value)
    assert out["i"] == [{"value": {"q": 1}, "id": "x"}]
    assert out["nan"] is None and out["when"] == "2030-01-02" and out["set"] == [1]
    assert out["msg"]["content"] == "hi" and out["msg"]["type"] == "ai"
    data = stream_event_data(("sub:1",), "messages", (AIMessage(content="t", id="m"), {"k": 1}))
    assert data["mode"] == "messages" and data["ns"] == ["sub:1"]
    assert data["data"][0]["content"] == "t" and data["data"][1] == {"k": 1}


async def test_runs_of_one_thread_run_one_at_a_time_in_order(rt: Runtime) -> None:
    launch = RunLaunch(input={"seconds": 0.2})
    first = await submit(rt, "t1", launch, seconds=0.2)
    second = await submit(rt, "t1", RunLaunch(input={}))
    other = await submit(rt, "t2", RunLaunch(input={}))
    done = await rt.wait(second, timeout=10)
    assert done.status is TaskStatus.COMPLETED and done.result == {"n": 2}  # state carried
    a, b = await rt.get_run(first), await rt.get_run(second)
    assert a.finished_at is not None and b.started_at is not None
    assert b.started_at >= a.finished_at
    # Another thread did not wait for t1.
    c = await rt.get_run(other)
    assert c.finished_at is not None and c.finished_at < a.finished_at


async def test_recorded_modes_become_stream_events(rt: Runtime) -> None:
    run_id = await submit(rt, "t", RunLaunch(input={}, stream_modes=("values", "tasks")))
    events = [e async for e in rt.events(run_id)]
    streamed = [e.data for e in events if e.type is EventType.STREAM]
    assert {d["mode"] for d in streamed} == {"values", "tasks"}
    assert streamed[-1]["mode"] == "values" and streamed[-1]["data"]["n"] == 1
    # Our own events are still there, in one id sequence.
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type is EventType.END


async def test_breakpoint_then_continue_and_time_travel(rt: Runtime) -> None:
    paused = await submit(rt, "tt", RunLaunch(input={}, interrupt_before=("count",)))
    assert (await rt.wait(paused, timeout=10)).status is TaskStatus.PAUSED
    compiled = rt.compile(COUNTER)
    state = await compiled.graph.aget_state(compiled.config("tt"))
    assert state.next == ("count",)
    before_count = state.config["configurable"]["checkpoint_id"]
    go_on = await submit(rt, "tt", RunLaunch())
    assert (await rt.wait(go_on, timeout=10)).result == {"n": 1}
    again = await submit(rt, "tt", RunLaunch(checkpoint_id=before_count))
    assert (await rt.wait(again, timeout=10)).result == {"n": 1}  # from n=0 once more
    history = [s async for s in compiled.graph.aget_state_history(compiled.config("tt"))]
    assert len(history) > 6


async def test_not_before_delays_the_start(rt: Runtime) -> None:
    start_at = utcnow() + dt.timedelta(seconds=0.4)
    run_id = await submit(rt, "late", RunLaunch(input={}, not_before=start_at))
    record = await rt.wait(run_id, timeout=10)
    assert record.status is TaskStatus.COMPLETED
    started = (await rt.get_run(run_id)).started_at
    assert started is not None and started >= start_at


async def test_a_run_cut_before_its_first_checkpoint_starts_over_on_a_used_thread(
    rt: Runtime,
) -> None:
    done = await submit(rt, "used", RunLaunch(input={}, metadata={"run_id": "one"}))
    assert (await rt.wait(done, timeout=10)).result == {"n": 1}
    compiled = rt.compile(COUNTER)
    config = compiled.config("used")
    # The thread's head is the earlier run's: this run saved nothing, so it starts over with
    # its input instead of continuing (and finishing at once) from that head.
    cut = RunLaunch(input={"seconds": 0}, metadata={"run_id": "two"})
    plan = await cut.plan(compiled, config, first=False)
    assert plan.graph_input is not None and plan.graph_input[INPUT_KEY] == {"seconds": 0}
    # A run whose checkpoint is the head continues from it.
    own = RunLaunch(input={"seconds": 0}, metadata={"run_id": "one"})
    assert (await own.plan(compiled, config, first=False)).graph_input is None
