"""Per-step overhead of graph-runtime over raw LangGraph, on the same SQLite checkpointer.

Measured in one run, repetitions interleaved, medians reported:

* raw: a hand-written ``StateGraph`` (async nodes, ``count + 1``, an async router for the
  loop) on the chosen checkpointer (``FastSqliteSaver`` or ``AsyncSqliteSaver``),
  durability ``sync``, driven with ``astream(stream_mode="updates")``;
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
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

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

    # Async, as our compiled router is: LangGraph runs a plain ``def`` router in its thread
    # pool, a hop per step (~0.3 ms here) that would flatter the ratio.
    async def again(state: RawState) -> str:
        return "step" if state["count"] < n else END

    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", again)
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


async def time_raw(
    db: Path, graph: StateGraph[Any, Any, Any, Any], runs: int, steps: int, kind: str
) -> float:
    async with open_checkpointer(db, kind=kind) as saver:  # type: ignore[arg-type]
        compiled = graph.compile(checkpointer=saver)
        cfg: dict[str, Any] = {"recursion_limit": steps + 10}

        async def one() -> None:
            config = {**cfg, "configurable": {"thread_id": uuid.uuid4().hex}}
            async for _ in compiled.astream(
                {"count": 0}, config, stream_mode="updates", durability="sync"
            ):
                pass

        await one()  # warm-up
        t0 = time.perf_counter()
        for _ in range(runs):
            await one()
        return (time.perf_counter() - t0) / (runs * steps) * 1e6


async def time_ours(
    db: Path, document: dict[str, Any], runs: int, steps: int, kind: str
) -> tuple[float, float]:
    """µs per step, and µs per run of reading the records back (outside the timing)."""
    definition = load_workflow(document)
    async with Runtime(db, checkpointer=kind) as rt:  # type: ignore[arg-type]
        await rt.run(definition, {})  # warm-up (and compile)
        run_ids = [uuid.uuid4().hex for _ in range(runs)]
        t0 = time.perf_counter()
        for run_id in run_ids:
            async for _ in rt.stream(definition, {}, run_id=run_id):
                pass
        elapsed = time.perf_counter() - t0
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
        return elapsed / (runs * steps) * 1e6, read


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
        ("loop 1000 steps", raw_loop(1000), doc_loop(1000), 1000, 1),
    ]
    kind = args.checkpointer
    print(f"checkpointer: {kind}, durability sync, {reps} interleaved reps, medians")
    print(f"{'graph':<18}{'raw µs/step':>14}{'ours µs/step':>15}{'ratio':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        # raw and ours on the chosen checkpointer, and (for the third line) the one of each
        # that it does not cover: raw on AsyncSqliteSaver, ours on FastSqliteSaver.
        results: dict[str, dict[str, list[float]]] = {c[0]: {} for c in cases}
        reads: dict[str, list[float]] = {c[0]: [] for c in cases}
        for rep in range(reps):
            for name, raw, document, steps, runs in cases:
                timed = results[name]
                for who, on in [
                    ("raw", kind),
                    ("ours", kind),
                    ("raw", "langgraph-sqlite"),
                    ("ours", "sqlite"),
                ]:
                    if f"{who}/{on}" in timed and len(timed[f"{who}/{on}"]) > rep:
                        continue  # the chosen checkpointer already covers it
                    db = Path(tmp) / f"{who}-{on}-{rep}-{steps}.db"
                    if who == "raw":
                        us = await time_raw(db, raw, runs, steps, on)
                    else:
                        us, read = await time_ours(db, document, runs, steps, on)
                        if on == kind:
                            reads[name].append(read)
                    timed.setdefault(f"{who}/{on}", []).append(us)
        worst = 0.0
        for name, timed in results.items():
            raw_m = statistics.median(timed[f"raw/{kind}"])
            ours_m = statistics.median(timed[f"ours/{kind}"])
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
            lg_m = statistics.median(timed["raw/langgraph-sqlite"])
            fast_m = statistics.median(timed["ours/sqlite"])
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
