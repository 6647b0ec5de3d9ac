from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from graph_runtime import SyncRuntime
from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import InputValidationError, WorkflowValidationError
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus
from graph_runtime.runtime import Runtime
from graph_runtime.sdk import Workflow
from graph_runtime.validation import load_workflow
from nodes.base import BaseNode, NodeContext, NodeOutput
from nodes.registry import NodeRegistry

SCHEMA = "graph-runtime/workflow/v1"


@pytest.fixture
async def rt(tmp_path: Path) -> Any:
    async with Runtime(
        tmp_path / "runs.db", config=RuntimeConfig(shutdown_grace_seconds=0.2)
    ) as runtime:
        yield runtime


def doc(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"schema": SCHEMA, "id": extra.pop("id", "wf"), "nodes": nodes, "edges": edges, **extra}


async def collect(
    rt: Runtime, workflow: Any, data: dict[str, Any] | None = None, **kw: Any
) -> list[Event]:
    return [e async for e in rt.stream(workflow, data, **kw)]


def assert_event_ids(events: list[Event]) -> None:
    ids = [e.id for e in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


LINEAR = doc(
    [
        {
            "id": "start",
            "type": "input",
            "config": {
                "schema": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "n": {"type": "integer"},
                    },
                }
            },
        },
        {
            "id": "calc",
            "type": "transform",
            "config": {"set": {"double": "state.n * 2", "upper": "upper(state.name)"}},
        },
        {
            "id": "greet",
            "type": "template",
            "config": {"template": "Hello {{ state.upper }} x{{ state.double }}", "output": "text"},
        },
        {
            "id": "done",
            "type": "output",
            "config": {"select": {"text": "state.text", "n": "state.double"}},
        },
    ],
    [
        {"from": "start", "to": "calc"},
        {"from": "calc", "to": "greet"},
        {"from": "greet", "to": "done"},
    ],
    state={
        "name": {"type": "string"},
        "n": {"type": "integer", "default": 1},
        "double": {"type": "integer"},
        "upper": {"type": "string"},
        "text": {"type": "string"},
    },
)


async def test_linear_run_records_every_step_and_event(rt: Runtime) -> None:
    events = await collect(rt, LINEAR, {"name": "ada", "n": 21}, run_id="r1")
    assert_event_ids(events)
    types = [e.type for e in events]
    assert types[:2] == [EventType.STATUS, EventType.STATUS]
    assert types[-1] is EventType.END and types.count(EventType.END) == 1
    assert events[-1].data == {"status": "completed", "result": {"text": "Hello ADA x42", "n": 42}}
    steps = await rt.steps("r1")
    assert [s.step for s in steps] == ["start", "calc", "greet", "done"]
    assert [s.seq for s in steps] == [1, 2, 3, 4]
    assert all(s.completed and s.attempt == 1 and s.duration_ms is not None for s in steps)
    assert steps[1].result == {"double": 42, "upper": "ADA"}
    response = await rt.status("r1")
    assert response.status is TaskStatus.COMPLETED and response.progress == 1.0
    assert response.result == {"text": "Hello ADA x42", "n": 42}
    statuses = [(e.data["old"], e.data["new"]) for e in events if e.type is EventType.STATUS]
    assert statuses == [(None, "pending"), ("pending", "running"), ("running", "completed")]


async def test_streaming_a_run_again_replays_it_from_the_store(rt: Runtime) -> None:
    # The first stream creates the run and hears every event live; the second finds it
    # stored (same run id, nothing new runs) and replays the same events from the store.
    first = await collect(rt, LINEAR, {"name": "ada", "n": 1}, run_id="again")
    reads: list[int] = []
    load = rt.store.events_after

    async def counted(run_id: str, after: int, **kw: Any) -> list[Event]:
        reads.append(after)
        return await load(run_id, after, **kw)

    rt.store.events_after = counted  # type: ignore[method-assign]
    second = await collect(rt, LINEAR, {"name": "ada", "n": 1}, run_id="again")
    assert reads == [0]
    assert [(e.id, e.type, e.data) for e in second] == [(e.id, e.type, e.data) for e in first]
    assert len(await rt.steps("again")) == 4

    reads.clear()
    fresh = await collect(rt, LINEAR, {"name": "bo", "n": 1}, run_id="fresh")
    assert reads == []  # subscribed before the run existed: no replay
    assert_event_ids(fresh)
    assert fresh[0].id == 1 and fresh[-1].type is EventType.END


async def test_input_schema_violation_fails_with_e001(rt: Runtime) -> None:
    response = await rt.run(LINEAR, {"name": ""}, run_id="bad")
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.VALIDATION_ERROR
    step = (await rt.steps("bad"))[0]
    assert step.step == "start" and step.error_code is ErrorCode.VALIDATION_ERROR
    assert "/name" in (step.error_message or "")


async def test_expression_error_fails_with_e007(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "calc", "type": "transform", "config": {"set": {"y": "state.x.missing + 1"}}},
            {"id": "done", "type": "output", "config": {}},
        ],
        [{"from": "start", "to": "calc"}, {"from": "calc", "to": "done"}],
    )
    response = await rt.run(wf, {"x": {"a": 1}}, run_id="e7")
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.DSL_EVALUATION_ERROR
    failed = (await rt.steps("e7"))[-1]
    assert failed.step == "calc" and failed.error_code is ErrorCode.DSL_EVALUATION_ERROR
    assert "calc" in (failed.error_message or "") and "state.x.missing" in (
        failed.error_message or ""
    )


ROUTING = doc(
    [
        {"id": "start", "type": "input", "config": {}},
        {
            "id": "route",
            "type": "condition",
            "config": {
                "branches": [
                    {"name": "big", "when": "state.n > 10"},
                    {"name": "mid", "when": "state.n > 5"},
                ],
                "default": "small",
            },
        },
        {"id": "a", "type": "transform", "config": {"set": {"label": "'big'"}}},
        {"id": "b", "type": "transform", "config": {"set": {"label": "'mid'"}}},
        {"id": "c", "type": "transform", "config": {"set": {"label": "'small'"}}},
        {"id": "out", "type": "output", "config": {"select": {"label": "state.label"}}},
    ],
    [
        {"from": "start", "to": "route"},
        {"from": "route", "branch": "big", "to": "a"},
        {"from": "route", "branch": "mid", "to": "b"},
        {"from": "route", "branch": "small", "to": "c"},
        {"from": ["a"], "to": "out"},
        {"from": "b", "to": "out"},
        {"from": "c", "to": "out"},
    ],
    state={"n": {"type": "integer"}, "label": {"type": "string"}},
)


@pytest.mark.parametrize(("n", "label"), [(11, "big"), (7, "mid"), (1, "small")])
async def test_condition_branches(rt: Runtime, n: int, label: str) -> None:
    response = await rt.run(ROUTING, {"n": n}, run_id=f"c{n}")
    assert response.result == {"label": label}
    route = next(s for s in await rt.steps(f"c{n}") if s.step == "route")
    assert route.result == {"branch": label}


async def test_when_edges_with_else(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "hi", "type": "template", "config": {"template": "hi", "output": "out"}},
            {"id": "lo", "type": "template", "config": {"template": "lo", "output": "out"}},
            {"id": "end", "type": "output", "config": {"select": {"out": "state.out"}}},
        ],
        [
            {"from": "start", "to": "hi", "when": "state.x >= 3"},
            {"from": "start", "to": "lo", "else": True},
            {"from": "hi", "to": "end"},
            {"from": "lo", "to": "end"},
        ],
    )
    assert (await rt.run(wf, {"x": 5})).result == {"out": "hi"}
    assert (await rt.run(wf, {"x": 1})).result == {"out": "lo"}


def routed_by_state(on_error: dict[str, Any] | None = None) -> dict[str, Any]:
    bump: dict[str, Any] = {
        "id": "bump",
        "type": "transform",
        "config": {"set": {"total": "2 / state.divisor", "items": "['x']", "tags": "{'b': 1}"}},
    }
    if on_error is not None:
        bump["on_error"] = on_error
    return doc(
        [
            bump,
            {"id": "hit", "type": "output", "config": {"select": {"via": "'hit'"}}},
            {"id": "miss", "type": "output", "config": {"select": {"via": "'miss'"}}},
        ],
        [
            {"from": "__start__", "to": "bump"},
            {
                "from": "bump",
                "to": "hit",
                "when": "state.total == 3 && state.items == ['a', 'x']"
                " && state.tags == {'a': 1, 'b': 1}",
            },
            {"from": "bump", "to": "miss", "else": True},
        ],
        state={
            "divisor": {"type": "integer"},
            "total": {"type": "integer", "reducer": "add", "default": 1},
            "items": {"type": "array", "reducer": "append", "default": []},
            "tags": {"type": "object", "reducer": "merge", "default": {}},
        },
    )


async def test_when_edges_see_the_update_through_the_reducers(rt: Runtime) -> None:
    # As a LangGraph router reads it: the node's input with the node's own update applied
    # through each key's reducer (1 + 2, ['a'] + ['x'], {'a': 1} | {'b': 1}).
    wf = routed_by_state()
    data = {"divisor": 1, "items": ["a"], "tags": {"a": 1}}
    assert (await rt.run(wf, data)).result == {"via": "hit"}
    assert (await rt.run(wf, {**data, "items": []})).result == {"via": "miss"}
    assert "bump -.-> hit" in Workflow.from_dict(wf).draw()


async def test_when_edges_route_a_recovered_node(rt: Runtime) -> None:
    wf = routed_by_state({"action": "continue", "update": {"total": 2, "items": ["x"]}})
    data = {"divisor": 0, "items": ["a"], "tags": {"a": 1, "b": 1}}
    response = await rt.run(wf, data, run_id="recovered")
    assert response.result == {"via": "hit"}
    bump = next(s for s in await rt.steps("recovered") if s.step == "bump")
    assert bump.error_code is ErrorCode.DSL_EVALUATION_ERROR


async def test_a_when_edge_that_fails_at_run_time_fails_the_run_with_e007(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "calc", "type": "transform", "config": {"set": {"y": "state.x"}}},
            {"id": "a", "type": "output", "config": {}},
            {"id": "b", "type": "output", "config": {}},
        ],
        [
            {"from": "start", "to": "calc"},
            {"from": "calc", "to": "a", "when": "state.y.size() > 1"},
            {"from": "calc", "to": "b", "else": True},
        ],
    )
    response = await rt.run(wf, {"x": 5}, run_id="edge-e7")
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.DSL_EVALUATION_ERROR
    assert "/edges/1/when" in (response.error or "")
    # The node itself completed; the edge out of it failed the run.
    assert [(s.step, s.status) for s in await rt.steps("edge-e7")] == [
        ("start", TaskStatus.COMPLETED),
        ("calc", TaskStatus.COMPLETED),
    ]


MAP_LOOP = doc(
    [
        {"id": "start", "type": "input", "config": {}},
        {
            "id": "each",
            "type": "map",
            "config": {"items": "state.items", "as": "it", "node": "square"},
        },
        {
            "id": "square",
            "type": "transform",
            "config": {"set": {"squares": "[it * it]", "seen": "[index]"}},
        },
        {"id": "bump", "type": "transform", "config": {"set": {"count": "state.count + 1"}}},
        {
            "id": "again",
            "type": "loop",
            "config": {"while": "state.count < 3", "max_iterations": 10},
        },
        {
            "id": "out",
            "type": "output",
            "config": {
                "select": {
                    "total": "state.squares.size()",
                    "count": "state.count",
                    "sorted": "state.seen",
                }
            },
        },
    ],
    [
        {"from": "start", "to": "each"},
        {"from": "square", "to": "bump"},
        {"from": "bump", "to": "again"},
        {"from": "again", "branch": "continue", "to": "bump"},
        {"from": "again", "branch": "done", "to": "out"},
    ],
    state={
        "items": {"type": "array", "default": []},
        "squares": {"type": "array", "reducer": "append", "default": []},
        "seen": {"type": "array", "reducer": "append", "default": []},
        "count": {"type": "integer", "reducer": "replace", "default": 0},
    },
)


async def test_map_fans_out_and_loop_iterates(rt: Runtime) -> None:
    response = await rt.run(MAP_LOOP, {"items": [1, 2, 3, 4]}, run_id="ml")
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["total"] == 4 and response.result["count"] == 3
    assert sorted(response.result["sorted"]) == [0, 1, 2, 3]
    steps = [s.step for s in await rt.steps("ml")]
    assert steps.count("square") == 4 and steps.count("bump") == 3 and steps.count("again") == 3


async def test_map_over_nothing_carries_on(rt: Runtime) -> None:
    response = await rt.run(MAP_LOOP, {"items": []})
    assert response.status is TaskStatus.COMPLETED
    assert response.result["total"] == 0


async def test_loop_exhausted_falls_back_to_done(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "inc", "type": "transform", "config": {"set": {"i": "state.i + 1"}}},
            {"id": "spin", "type": "loop", "config": {"while": "true", "max_iterations": 4}},
            {"id": "out", "type": "output", "config": {"select": {"i": "state.i"}}},
        ],
        [
            {"from": "start", "to": "inc"},
            {"from": "inc", "to": "spin"},
            {"from": "spin", "branch": "continue", "to": "inc"},
            {"from": "spin", "branch": "done", "to": "out"},
        ],
        state={"i": {"type": "integer", "default": 0}},
    )
    response = await rt.run(wf, {}, run_id="ex")
    assert response.result == {"i": 5}
    assert (await rt.steps("ex"))[-2].result == {"branch": "exhausted", "iterations": 4}


async def test_parallel_fan_out_and_join(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "left", "type": "transform", "config": {"set": {"parts": "['left']"}}},
            {"id": "right", "type": "transform", "config": {"set": {"parts": "['right']"}}},
            {"id": "joined", "type": "transform", "config": {"set": {"n": "state.parts.size()"}}},
            {"id": "out", "type": "output", "config": {}},
        ],
        [
            {"from": "start", "to": ["left", "right"]},
            {"from": ["left", "right"], "to": "joined"},
            {"from": "joined", "to": "out"},
        ],
        state={
            "parts": {"type": "array", "reducer": "append", "default": []},
            "n": {"type": "integer"},
        },
    )
    response = await rt.run(wf, {}, run_id="j")
    assert response.result == {"parts": ["left", "right"], "n": 2} or response.result == {
        "parts": ["right", "left"],
        "n": 2,
    }
    assert [s.step for s in await rt.steps("j")].count("joined") == 1


async def test_run_timeout_gives_timed_out_e002(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "nap", "type": "wait", "config": {"seconds": 30}},
            {"id": "out", "type": "output", "config": {}},
        ],
        [{"from": "start", "to": "nap"}, {"from": "nap", "to": "out"}],
        settings={"timeout_seconds": 0.3},
    )
    started = time.monotonic()
    response = await rt.run(wf, {}, run_id="to")
    assert time.monotonic() - started < 3
    assert (
        response.status is TaskStatus.TIMED_OUT and response.error_code is ErrorCode.TIMEOUT_ERROR
    )
    cut = (await rt.steps("to"))[-1]
    # Cut by the run's timeout, not by a stop.
    assert cut.step == "nap" and cut.error_code is ErrorCode.TIMEOUT_ERROR
    assert cut.status is TaskStatus.TIMED_OUT and "timeout" in (cut.error_message or "")


async def test_node_timeout_retries_then_e005(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {
                "id": "nap",
                "type": "wait",
                "config": {"seconds": 5},
                "timeout": 0.05,
                "retry": {"max_attempts": 3, "initial_interval": 0.01, "jitter": False},
            },
            {"id": "out", "type": "output", "config": {}},
        ],
        [{"from": "start", "to": "nap"}, {"from": "nap", "to": "out"}],
    )
    response = await rt.run(wf, {}, run_id="rt")
    assert response.status is TaskStatus.FAILED
    assert response.error_code is ErrorCode.RETRY_EXHAUSTED
    naps = [s for s in await rt.steps("rt") if s.step == "nap"]
    assert [s.attempt for s in naps] == [1, 2, 3]
    assert [s.error_code for s in naps] == [
        ErrorCode.TIMEOUT_ERROR,
        ErrorCode.TIMEOUT_ERROR,
        ErrorCode.RETRY_EXHAUSTED,
    ]


async def test_on_error_continue_and_route(rt: Runtime) -> None:
    nodes = [
        {"id": "start", "type": "input", "config": {}},
        {
            "id": "risky",
            "type": "transform",
            "config": {"set": {"v": "1 / state.zero"}},
            "on_error": {"action": "continue", "update": {"v": -1}},
        },
        {"id": "out", "type": "output", "config": {"select": {"v": "state.v"}}},
    ]
    wf = doc(
        nodes,
        [{"from": "start", "to": "risky"}, {"from": "risky", "to": "out"}],
        state={"zero": {"type": "integer"}, "v": {"type": "integer"}},
    )
    response = await rt.run(wf, {"zero": 0}, run_id="oe")
    assert response.status is TaskStatus.COMPLETED and response.result == {"v": -1}
    assert (await rt.steps("oe"))[1].error_code is ErrorCode.DSL_EVALUATION_ERROR

    nodes[1]["on_error"] = {"action": "route", "to": "fallback"}
    nodes.append({"id": "fallback", "type": "output", "config": {"select": {"v": "'fallback'"}}})
    wf = doc(
        nodes,
        [{"from": "start", "to": "risky"}, {"from": "risky", "to": "out"}],
        state={"zero": {"type": "integer"}, "v": {"type": "integer"}},
    )
    assert (await rt.run(wf, {"zero": 0})).result == {"v": "fallback"}
    assert (await rt.run(wf, {"zero": 1})).result == {"v": 1}


async def test_breakpoint_pauses_and_resume_finishes(rt: Runtime) -> None:
    wf = {**LINEAR, "settings": {"breakpoints": {"before": ["greet"]}}}
    events = await collect(rt, wf, {"name": "bo", "n": 1}, run_id="bp")
    assert events[-1].type is EventType.STATUS and events[-1].data["new"] == "paused"
    assert (await rt.status("bp")).status is TaskStatus.PAUSED
    await rt.resume("bp")
    more = [e async for e in rt.events("bp", after=events[-1].id)]
    assert more[0].id == events[-1].id + 1
    assert more[-1].data["status"] == "completed"
    assert (await rt.status("bp")).result == {"text": "Hello BO x2", "n": 2}
    assert [s.step for s in await rt.steps("bp")] == ["start", "calc", "greet", "done"]


async def test_minimal_document_infers_state(rt: Runtime) -> None:
    minimal = {
        "nodes": [
            {"id": "in", "type": "input"},
            {"id": "t", "type": "transform", "config": {"set": {"greeting": "'hi ' + state.who"}}},
            {"id": "o", "type": "output", "config": {"select": {"greeting": "state.greeting"}}},
        ],
        "edges": [{"source": "in", "target": "t"}, {"source": "t", "target": "o"}],
    }
    response = await rt.run(minimal, {"who": "you"})
    assert response.result == {"greeting": "hi you"}


async def test_invalid_workflow_raises_all_problems(rt: Runtime) -> None:
    bad = doc(
        [
            {"id": "start", "type": "inptu", "config": {}},
            {"id": "x", "type": "transform", "config": {}},
        ],
        [],
    )
    with pytest.raises(WorkflowValidationError) as info:
        await rt.run(bad, {})
    paths = {p.path for p in info.value.problems}
    assert "/nodes/0/type" in paths and any(p.startswith("/nodes/1/config") for p in paths)
    assert "did you mean 'input'" in str(info.value)


class ShoutConfig(BaseModel):
    word: str


class Shout(BaseNode[ShoutConfig]):
    type_name: ClassVar[str] = "shout"
    config_model: ClassVar[type[BaseModel]] = ShoutConfig

    async def run(self, ctx: NodeContext) -> NodeOutput:
        ctx.writer({"progress": "half"})
        ctx.log("info", "shouting")
        return NodeOutput(update={"said": self.config.word.upper()})

    @classmethod
    def writes(cls, config: Any) -> set[str]:
        return {"said"}


async def test_custom_node_type_registered_from_python(tmp_path: Path) -> None:
    registry = NodeRegistry()
    registry.register(Shout)
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "s", "type": "shout", "config": {"word": "hey"}},
            {"id": "o", "type": "output", "config": {"select": {"said": "state.said"}}},
        ],
        [{"from": "start", "to": "s"}, {"from": "s", "to": "o"}],
    )
    async with Runtime(tmp_path / "c.db", registry=registry) as rt:
        events = await collect(rt, wf, {})
    assert events[-1].data["result"] == {"said": "HEY"}
    custom = [e for e in events if e.type is EventType.CUSTOM]
    assert custom and custom[0].data["data"] == {"progress": "half"}
    logs = [e for e in events if e.type is EventType.LOG]
    assert logs[0].data == {"level": "info", "message": "shouting", "node_id": "s"}


async def test_compiled_graphs_are_cached(rt: Runtime) -> None:
    first = rt.compile(LINEAR)
    assert rt.compile(dict(LINEAR)) is first
    definition = rt.load(LINEAR)
    assert rt.compiler.content_hash(definition) == definition.content_hash
    assert rt.compiler.content_hash(rt.load(dict(LINEAR))) == definition.content_hash
    changed = rt.load({**LINEAR, "name": "renamed"})
    assert rt.compiler.content_hash(changed) == changed.content_hash != definition.content_hash
    assert "greet" in first.draw()


def test_sync_runtime_works_inside_a_running_loop(tmp_path: Path) -> None:
    async def notebook_cell() -> Any:
        # Jupyter runs cells inside a loop; the sync bridge must not need a free one.
        with SyncRuntime(tmp_path / "nb.db") as rt:
            events = list(rt.stream(LINEAR, {"name": "nb", "n": 2}))
            response = rt.run(LINEAR, {"name": "nb", "n": 3})
        return events, response

    events, response = asyncio.run(notebook_cell())
    assert events[-1].type is EventType.END
    assert response.result == {"text": "Hello NB x6", "n": 6}


async def test_tools_from_import_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GRAPH_RUNTIME_TOOLS", "examples.support_tools:TOOLS, examples.support_tools:refund_status"
    )
    config = RuntimeConfig(shutdown_grace_seconds=0.2)
    assert config.tools == ["examples.support_tools:TOOLS", "examples.support_tools:refund_status"]
    async with Runtime(tmp_path / "t.db", config=config) as rt:
        assert "orders.refund_status" in rt.services["tools"].names()
        stored = await rt.save_workflow(Path("examples/support_triage.json"))
        assert stored.workflow_id == "support-triage"
    bad = RuntimeConfig(tools=["examples.support_tools:NOPE"])
    with pytest.raises(InputValidationError, match="NOPE"):
        Runtime(tmp_path / "u.db", config=bad)


class LoudShout(Shout):
    """A subclass of a type: it may write more than its parent declared."""

    type_name: ClassVar[str] = "loud"


def _runtime_channels(rt: Runtime, workflow: dict[str, Any]) -> set[str]:
    channels = rt.compile(workflow).graph.channels
    return {k for k in ("__output__", "__loops__", "__map__") if k in channels}


async def test_only_the_runtime_channels_a_node_may_write_are_declared(tmp_path: Path) -> None:
    start = {"id": "start", "type": "input", "config": {}}
    plain = doc(
        [start, {"id": "t", "type": "transform", "config": {"set": {"a": "1"}}}],
        [{"from": "start", "to": "t"}, {"from": "t", "to": "__end__"}],
        id="plain",
    )
    registry = NodeRegistry()
    registry.register(Shout)
    registry.register(LoudShout)
    async with Runtime(tmp_path / "c.db", registry=registry) as rt:
        assert _runtime_channels(rt, plain) == set()
        assert _runtime_channels(rt, LINEAR) == {"__output__"}
        # A type that does not say what it writes may write any of them; so may a subclass
        # of a type that said, unless it says again.
        for kind in ("shout", "loud"):
            custom = doc(
                [start, {"id": "s", "type": kind, "config": {"word": "hey"}}],
                [{"from": "start", "to": "s"}, {"from": "s", "to": "__end__"}],
                id=kind,
            )
            assert _runtime_channels(rt, custom) == {"__output__", "__loops__", "__map__"}
        response = await rt.run(plain, {})
    assert response.status is TaskStatus.COMPLETED


async def test_the_current_node_is_the_one_running(rt: Runtime) -> None:
    wf = doc(
        [
            {"id": "start", "type": "input", "config": {}},
            {"id": "slow", "type": "wait", "config": {"seconds": 30}},
            {"id": "out", "type": "output", "config": {"select": {}}},
        ],
        [{"from": "start", "to": "slow"}, {"from": "slow", "to": "out"}],
        id="slow",
    )
    record = await rt.submit(wf, {}, run_id="slow-1")
    for _ in range(200):
        if rt.current_node("slow-1", await rt.store.get_run("slow-1")) == "slow":
            break
        await asyncio.sleep(0.01)
    assert rt.current_node(record.run_id, await rt.store.get_run("slow-1")) == "slow"
    await rt.stop("slow-1")


async def test_without_an_output_node_the_result_is_the_final_state(rt: Runtime) -> None:
    # The final state through the reducers (a join of two branches appending to a list),
    # as the last checkpoint holds it, without a ``values`` chunk per superstep.
    wf = doc(
        [
            {"id": "a", "type": "transform", "config": {"set": {"seen": "['a']", "n": "1"}}},
            {"id": "b", "type": "transform", "config": {"set": {"seen": "['b']"}}},
            {"id": "c", "type": "transform", "config": {"set": {"seen": "['c']"}}},
            {"id": "d", "type": "transform", "config": {"set": {"n": "state.n + 1"}}},
        ],
        [
            {"from": "__start__", "to": "a"},
            {"from": "a", "to": ["b", "c"]},
            {"from": ["b", "c"], "to": "d"},
            {"from": "d", "to": "__end__"},
        ],
        id="final",
        state={
            "seen": {"type": "array", "reducer": "append", "default": []},
            "n": {"type": "integer", "default": 0},
        },
    )
    compiled = rt.compiler.compile(load_workflow(wf))
    assert "values" not in compiled.stream_modes
    response = await rt.run(wf, {})
    assert response.status is TaskStatus.COMPLETED
    assert response.result is not None
    assert sorted(response.result["seen"]) == ["a", "b", "c"]
    assert response.result["seen"][0] == "a"
    assert response.result["n"] == 2
    state = await compiled.graph.aget_state(compiled.config(response.task_id))
    assert {k: state.values[k] for k in ("seen", "n")} == response.result
