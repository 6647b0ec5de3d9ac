"""What the wait path relies on: settling from status events, typed subscriptions, routing."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from helpers.workflows import chain

from graph_runtime.config import RuntimeConfig
from graph_runtime.events import EventBus
from graph_runtime.models import Event, EventType, TaskStatus
from graph_runtime.runtime import Runtime
from server.agent_protocol.protocol import get_protocol
from server.routes import ROUTERS
from server.routes._common import get_runtime

SCHEMA = "graph-runtime/workflow/v1"
BREAKPOINT = {
    "schema": SCHEMA,
    "id": "bp",
    "state": {"count": {"type": "integer", "default": 0}},
    "settings": {"breakpoints": {"before": ["b"]}},
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {"id": "a", "type": "transform", "config": {"set": {"count": "state.count + 1"}}},
        {"id": "b", "type": "transform", "config": {"set": {"count": "state.count + 1"}}},
        {"id": "out", "type": "output", "config": {"select": {"count": "state.count"}}},
    ],
    "edges": [
        {"from": "start", "to": "a"},
        {"from": "a", "to": "b"},
        {"from": "b", "to": "out"},
    ],
}


def _event(i: int, type_: EventType, **data: Any) -> Event:
    return Event(run_id="r", id=i, type=type_, data=data)


async def test_a_typed_subscription_gets_only_its_types() -> None:
    bus = EventBus()
    types = frozenset({EventType.STATUS, EventType.END})
    async with bus.subscribe("r", types=types) as some, bus.subscribe("r") as every:
        bus.publish(_event(1, EventType.STATUS, new="running"))
        bus.publish(_event(2, EventType.LOG, message="hi"))
        bus.publish(_event(3, EventType.END, status="completed"))
        got = [some.queue.get_nowait() for _ in range(some.queue.qsize())]
        assert [e.id for e in got if e is not None] == [1, 3]
        assert every.queue.qsize() == 3


async def _runtime(tmp_path: Path) -> Runtime:
    return Runtime(tmp_path / "runs.db", config=RuntimeConfig(shutdown_grace_seconds=0.2))


async def test_settle_returns_the_record_of_a_finished_run(tmp_path: Path) -> None:
    async with await _runtime(tmp_path) as rt:
        record = await rt.submit(chain("c", 2, seconds=0.05), {})
        settled = await rt.settle(record.run_id, timeout=10)
        assert settled.status is TaskStatus.COMPLETED
        assert settled.run_id == record.run_id
        # Already settled: answers at once, from the store.
        assert (await rt.settle(record.run_id, timeout=1)).status is TaskStatus.COMPLETED
        assert (await rt.wait(record.run_id, timeout=1)).status is TaskStatus.COMPLETED


async def test_settle_stops_at_a_breakpoint_and_after_the_resume(tmp_path: Path) -> None:
    async with await _runtime(tmp_path) as rt:
        record = await rt.submit(BREAKPOINT, {})
        assert (await rt.settle(record.run_id, timeout=10)).status is TaskStatus.PAUSED
        await rt.resume(record.run_id)
        done = await rt.wait(record.run_id, timeout=10)
        assert done.status is TaskStatus.COMPLETED and done.result == {"count": 2}


async def test_settle_polls_the_store_once_its_subscription_is_dropped(tmp_path: Path) -> None:
    async with await _runtime(tmp_path) as rt:
        record = await rt.submit(chain("slow", 2, seconds=0.2), {})
        waiter = asyncio.create_task(rt.settle(record.run_id, timeout=10))
        await asyncio.sleep(0.05)
        rt.bus.close_all()  # what a shutdown does to subscribers: no more events for them
        settled = await waiter
        assert settled.status is TaskStatus.COMPLETED


def test_dependencies_run_on_the_loop() -> None:
    # A plain function dependency runs in FastAPI's thread pool: a thread hop per request.
    assert inspect.iscoroutinefunction(get_protocol)
    assert inspect.iscoroutinefunction(get_runtime)


def test_no_route_matches_a_path_of_another_router() -> None:
    # ROUTERS is ordered for matching speed; that is only safe while no two routers overlap.
    routes = [
        (i, route.path, set(route.methods or ()), route.path_regex)
        for i, router in enumerate(ROUTERS)
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    assert len(routes) == sum(len(router.routes) for router in ROUTERS)
    for i, path, methods, _ in routes:
        sample = re.sub(r"\{[^}]*\}", "x0", path)
        for j, other, other_methods, regex in routes:
            if i != j and methods & other_methods:
                assert not regex.match(sample), (path, other)
