"""Per-step overhead of graph-runtime over raw LangGraph, on the same SQLite checkpointer.

Measured in one run: in each repetition raw and ours are open at once and their runs take
turns; medians over the repetitions are reported.

* raw: a hand-written ``StateGraph`` (async nodes, ``count + 1``, an async router for the
  loop) on the chosen checkpointer (``FastSqliteSaver`` or ``AsyncSqliteSaver``),
  durability ``sync``, driven with ``astream(stream_mode="updates")``. Our compiled loop
  routes inside its node, so the loop is also timed against a raw loop that does too
  (``Command(goto=...)``, its own line);
* ours: the same graph as a workflow document (``transform`` nodes, CEL ``state.count + 1``)
  compiled by graph-runtime, with the recorder producing every step record and event. After
  the timing, the bench reads every run's step records and step events back and checks that
  none is missing (the read is reported on its own line, not in the ratio).

Both use the same checkpointer class and pragmas. A third line per graph compares ours on
``FastSqliteSaver`` (the default) with raw LangGraph on ``AsyncSqliteSaver`` (what a LangGraph
user has without us): the gain users get. Usage: ``python bench/bench_overhead.py [--reps 5]
[--quick] [--checkpointer sqlite|langgraph-sqlite]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from checkpoints.factory import open_checkpointer
from graph_runtime.models import EventType
from graph_runtime.runtime import Runtime
from graph_runtime.validation import load_workflow


class RawState(TypedDict, total=False):
    count: int


def raw_linear(n: int) -> StateGraph[Any, Any, Any, Any]:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(RawState)

    async def step(state: RawState) -> RawState:
        return {"count": state.get("count", 0) + 1}

    for i in range(n):
        g.add_node(f"n{i}", step)
        g.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    g.add_edge(f"n{n - 1}", END)
    return g


def raw_loop(n: int) -> StateGraph[Any, Any, Any, Any]:
    g: StateGraph[Any, Any, Any, Any] = StateGraph(RawState)

    async def step(state: RawState) -> RawState:
        return {"count": state.get("count", 0) + 1}

    # Async: LangGraph runs a plain ``def`` router in its thread pool, a hop per step
    # (~0.3 ms here) that would flatter the ratio. (Our compiled graph takes a node's
    # ``when`` edges inside the node: a LangGraph router costs a runnable per step.)
    async def again(state: RawState) -> str:
        return "step" if state["count"] < n else END

    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", again)
    return g


def raw_loop_goto(n: int) -> StateGraph[Any, Any, Any, Any]:
    """The loop with its routing inside the node (``Command(goto=...)``), as ours compiles it."""
    g: StateGraph[Any, Any, Any, Any] = StateGraph(RawState)

    async def step(state: RawState) -> Command[str]:
        count = state.get("count", 0) + 1
        return Command(update={"count": count}, goto="step" if count < n else END)

    g.add_node("step", step, destinations=("step", END))
    g.add_edge(START, "step")
    return g


def doc_linear(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "transform", "config": {"set": {"count": "state.count + 1"}}}
        for i in range(n)
    ]
    edges = [{"from": "__start__" if i == 0 else f"n{i - 1}", "to": f"n{i}"} for i in range(n)]
    edges.append({"from": f"n{n - 1}", "to": "__end__"})
    return {
        "schema": "graph-runtime/workflow/v1",
        "id": f"linear{n}",
        "settings": {"durability": "sync", "recursion_limit": n + 10},
        "state": {"count": {"type": "integer", "default": 0}},
        "nodes": nodes,
        "edges": edges,
    }


def doc_loop(n: int) -> dict[str, Any]:
    return {
        "schema": "graph-runtime/workflow/v1",
        "id": f"loop{n}",
        "settings": {"durability": "sync", "recursion_limit": n + 10},
        "state": {"count": {"type": "integer", "default": 0}},
        "nodes": [
            {"id": "step", "type": "transform", "config": {"set": {"count": "state.count + 1"}}}
        ],
        "edges": [
            {"from": "__start__", "to": "step"},
            {"from": "step", "to": "step", "when": f"state.count < {n}"},
            {"from": "step", "to": "__end__", "else": True},
        ],
    }


@asynccontextmanager
async def open_pair(
    tmp: Path,
    graph: StateGraph[Any, Any, Any, Any],
    document: dict[str, Any],
    steps: int,
    *,
    raw_on: str,
    ours_on: str,
) -> AsyncIterator[
    tuple[Runtime, Callable[[], Awaitable[float]], Callable[[str | None], Awaitable[float]]]
]:
    """Raw and ours open at once, each on its own database file, and warmed up.

    Yields the runtime and the two run functions; each returns its run's seconds
    (``ours(run_id)``: ``None`` for a new id).
    """
    definition = load_workflow(document)
    tag = uuid.uuid4().hex[:8]
    async with (
        open_checkpointer(tmp / f"raw-{tag}.db", kind=raw_on) as saver,  # type: ignore[arg-type]
        Runtime(tmp / f"ours-{tag}.db", checkpointer=ours_on) as rt,  # type: ignore[arg-type]
    ):
        compiled = graph.compile(checkpointer=saver)
        cfg: dict[str, Any] = {"recursion_limit": steps + 10}

        async def raw_one() -> float:
            config = {**cfg, "configurable": {"thread_id": uuid.uuid4().hex}}
            t0 = time.perf_counter()
            async for _ in compiled.astream(
                {"count": 0}, config, stream_mode="updates", durability="sync"
            ):
                pass
            return time.perf_counter() - t0

        async def ours_one(run_id: str | None) -> float:
            t0 = time.perf_counter()
            async for _ in rt.stream(definition, {}, run_id=run_id):
                pass
            return time.perf_counter() - t0

        await raw_one()  # warm-up
        await rt.run(definition, {})  # warm-up (and compile)
        yield rt, raw_one, ours_one


async def time_pair(
    tmp: Path,
    graph: StateGraph[Any, Any, Any, Any],
    document: dict[str, Any],
    runs: int,
    steps: int,
    *,
    raw_on: str,
    ours_on: str,
) -> tuple[float, float, float]:
    """µs per step of raw and of ours, run by run in turn; µs per run of reading ours back.

    Both are open at once, each on its own database file, and their runs alternate (which
    goes first alternates too): a machine that slows down for a while slows both alike,
    where timing all of one and then all of the other would charge it to one side.
    """
    pair = open_pair(tmp, graph, document, steps, raw_on=raw_on, ours_on=ours_on)
    async with pair as (rt, raw_one, ours_one):
        run_ids = [uuid.uuid4().hex for _ in range(runs)]
        raw_s = ours_s = 0.0
        for i, run_id in enumerate(run_ids):
            if i % 2:
                ours_s += await ours_one(run_id)
                raw_s += await raw_one()
            else:
                raw_s += await raw_one()
                ours_s += await ours_one(run_id)
        # Every step record and its event are in the store. Read after the timing: raw
        # LangGraph reads nothing back, and the read is timed apart (``read µs/run``).
        t1 = time.perf_counter()
        records = events = 0
        for run_id in run_ids:
            records += len(await rt.steps(run_id))
            stored = await rt.store.events_after(run_id, 0, limit=10 * steps + 100)
            events += sum(1 for e in stored if e.type is EventType.STEP)
        read = (time.perf_counter() - t1) / runs * 1e6
        assert records == events == runs * steps, (records, events, runs, steps)
    per_step = 1e6 / (runs * steps)
    return raw_s * per_step, ours_s * per_step, read


async def count_calls(
    tmp: Path, graph: StateGraph[Any, Any, Any, Any], document: dict[str, Any], steps: int
) -> tuple[float, float]:
    """Python function calls per step of raw and of ours, counted by cProfile (not timed).

    A count does not vary from run to run as a time does: it shows a change of a few
    percent that the timings' noise hides. C builtins are left out (they cost far less).
    """
    runs = max(2, 200 // steps)
    counted: list[float] = []
    kind = "langgraph-sqlite"
    async with open_pair(tmp, graph, document, steps, raw_on=kind, ours_on=kind) as pair:
        _, raw_one, ours_one = pair
        for one in (raw_one, partial(ours_one, None)):
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(runs):
                await one()
            profile.disable()
            stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
            calls = sum(v[1] for k, v in stats.items() if k[0] != "~")
            counted.append(calls / (runs * steps))
    return counted[0], counted[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--checkpointer", default="langgraph-sqlite", choices=["sqlite", "langgraph-sqlite"]
    )
    args = parser.parse_args()
    reps = 2 if args.quick else args.reps
    cases = [
        ("linear 10 nodes", raw_linear(10), doc_linear(10), 10, 20 if args.quick else 60),
        ("loop 1000 steps", raw_loop(1000), doc_loop(1000), 1000, 2),
    ]
    # The loop once more against raw LangGraph routing inside its node, as ours does.
    goto = raw_loop_goto(1000)
    kind = args.checkpointer
    print(f"checkpointer: {kind}, durability sync, {reps} reps of runs in turn, medians")
    print(f"{'graph':<18}{'raw µs/step':>14}{'ours µs/step':>15}{'ratio':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        # Raw and ours on the chosen checkpointer; and ours on FastSqliteSaver against raw
        # on AsyncSqliteSaver (what a LangGraph user has without us), for the third line.
        results: dict[str, dict[str, list[float]]] = {c[0]: {} for c in cases}
        reads: dict[str, list[float]] = {c[0]: [] for c in cases}
        for _rep in range(reps):
            for name, raw, document, steps, runs in cases:
                timed = results[name]
                for label, raw_on, ours_on in [
                    ("same", kind, kind),
                    ("gain", "langgraph-sqlite", "sqlite"),
                ]:
                    raw_us, ours_us, read = await time_pair(
                        Path(tmp), raw, document, runs, steps, raw_on=raw_on, ours_on=ours_on
                    )
                    timed.setdefault(f"raw/{label}", []).append(raw_us)
                    timed.setdefault(f"ours/{label}", []).append(ours_us)
                    if label == "same":
                        reads[name].append(read)
                if name.startswith("loop"):
                    raw_us, ours_us, _ = await time_pair(
                        Path(tmp), goto, document, runs, steps, raw_on=kind, ours_on=kind
                    )
                    timed.setdefault("raw/goto", []).append(raw_us)
                    timed.setdefault("ours/goto", []).append(ours_us)
        worst = 0.0
        for name, timed in results.items():
            raw, document = next((c[1], c[2]) for c in cases if c[0] == name)
            raw_m = statistics.median(timed["raw/same"])
            ours_m = statistics.median(timed["ours/same"])
            worst = max(worst, ours_m / raw_m)
            print(f"{name:<18}{raw_m:>14.0f}{ours_m:>15.0f}{ours_m / raw_m:>8.2f}x")
            steps = next(c[3] for c in cases if c[0] == name)
            extra = ours_m - raw_m
            print(
                f"{'':<2}ours - raw: {extra:.0f} µs/step = {extra * steps / 1000:.1f} ms per run"
                f" of {steps} steps"
            )
            print(
                f"{'':<2}read back after the timing (steps + events):"
                f"{statistics.median(reads[name]):>7.0f} µs/run"
            )
            if "raw/goto" in timed:
                goto_m = statistics.median(timed["raw/goto"])
                ours_g = statistics.median(timed["ours/goto"])
                print(
                    f"{'':<2}against raw LangGraph routing in its node (Command):"
                    f"{ours_g:>7.0f} vs {goto_m:.0f} µs/step{ours_g / goto_m:>7.2f}x"
                )
            raw_c, ours_c = await count_calls(Path(tmp), raw, document, steps)
            print(
                f"{'':<2}Python calls per step (cProfile, not timed): raw {raw_c:.0f},"
                f" ours {ours_c:.0f} ({ours_c / raw_c:.2f}x)"
            )
            lg_m = statistics.median(timed["raw/gain"])
            fast_m = statistics.median(timed["ours/gain"])
            print(
                f"{'':<2}ours on FastSqliteSaver vs raw LangGraph on AsyncSqliteSaver:"
                f"{fast_m:>7.0f} vs {lg_m:.0f} µs/step{fast_m / lg_m:>7.2f}x"
            )
    print(
        f"target ≤ 1.15x raw per step: {'met' if worst <= 1.15 else 'NOT met'} (worst {worst:.2f}x)"
    )
    print(
        "  (the loop's extra µs/step is what each further step costs; the 10-node graph's extra"
        " per run adds what a run costs once: its row, its two status commits, its events)"
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
