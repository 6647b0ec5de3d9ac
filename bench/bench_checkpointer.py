"""Benchmark FastSqliteSaver against LangGraph's AsyncSqliteSaver and SqliteSaver.

One run measures, on the same graphs and the same machine:

* µs per step for a 10-node and a 100-node linear graph and a 1000-step loop, with a
  small state (a counter) and a growing state (a list appended to every step), at
  durability ``sync`` and ``async``; for every saver at its default ``synchronous`` and
  at the other setting (SQLite's default is FULL; FastSqliteSaver's is NORMAL), so the
  gain is not just fsync.
* 100 concurrent 10-node runs on one shared saver (runs/s).

Async savers run ``ainvoke`` with ``async def`` nodes; ``SqliteSaver`` runs ``invoke``
with plain ``def`` nodes (its natural interface). ``InMemorySaver`` is a reference row:
LangGraph's own per-step checkpointing work, with no storage at all. Every
(configuration, repetition) gets a fresh saver and database file; setup and one warm-up
run are untimed; repetitions are interleaved (rep 1 of every configuration, then rep 2…)
and medians reported. Every run's final state is checked.

Usage::

    .venv/bin/python bench/bench_checkpointer.py            # full: 3 reps, ~3 min
    .venv/bin/python bench/bench_checkpointer.py --quick    # 1 rep, 200-step loop, ~30 s
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph

from checkpoints.sqlite_saver import FastSqliteSaver

Shape = Literal["L10", "L100", "loop1000"]
StateKind = Literal["counter", "append"]
Durability = Literal["sync", "async"]


class CounterState(TypedDict):
    count: int
    limit: int


class AppendState(TypedDict):
    count: int
    limit: int
    items: Annotated[list[int], operator.add]


# --- graphs -----------------------------------------------------------------------------


def _node(state_kind: StateKind, is_async: bool) -> Callable[..., Any]:
    if state_kind == "counter":

        def update(s: dict[str, Any]) -> dict[str, Any]:
            return {"count": s["count"] + 1}

    else:

        def update(s: dict[str, Any]) -> dict[str, Any]:
            return {"count": s["count"] + 1, "items": [s["count"]]}

    if not is_async:
        return update

    async def aupdate(s: dict[str, Any]) -> dict[str, Any]:
        return update(s)

    return aupdate


def _router(is_async: bool) -> Callable[..., Any]:
    def route(s: dict[str, Any]) -> str:
        return "step" if s["count"] < s["limit"] else END

    if not is_async:
        return route

    # An async router: a sync one would cost a run_in_executor hop per step.
    async def aroute(s: dict[str, Any]) -> str:
        return route(s)

    return aroute


def build_graph(
    shape: Shape, state_kind: StateKind, is_async: bool, saver: BaseCheckpointSaver[Any] | None
) -> Any:
    schema: type[Any] = CounterState if state_kind == "counter" else AppendState
    g: StateGraph[Any] = StateGraph(schema)
    if shape == "loop1000":
        g.add_node("step", _node(state_kind, is_async))
        g.add_edge(START, "step")
        g.add_conditional_edges("step", _router(is_async), ["step", END])
    else:
        n = 10 if shape == "L10" else 100
        prev = START
        for i in range(n):
            g.add_node(f"n{i}", _node(state_kind, is_async))
            g.add_edge(prev, f"n{i}")
            prev = f"n{i}"
        g.add_edge(prev, END)
    return g.compile(checkpointer=saver)


def steps_of(shape: Shape, loop_steps: int) -> int:
    return {"L10": 10, "L100": 100}.get(shape, loop_steps)


def graph_input(state_kind: StateKind, limit: int) -> dict[str, Any]:
    base: dict[str, Any] = {"count": 0, "limit": limit}
    if state_kind == "append":
        base["items"] = []
    return base


def check(out: dict[str, Any], steps: int, state_kind: StateKind) -> None:
    assert out["count"] == steps, out["count"]
    if state_kind == "append":
        assert out["items"] == list(range(steps)), len(out["items"])


# --- savers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SaverSpec:
    name: str
    is_async: bool
    synchronous: str  # "NORMAL" / "FULL"
    default: bool


SAVERS = [
    SaverSpec("fast", True, "NORMAL", True),
    SaverSpec("fast", True, "FULL", False),
    SaverSpec("asqlite", True, "FULL", True),
    SaverSpec("asqlite", True, "NORMAL", False),
    SaverSpec("sqlite", False, "FULL", True),
    SaverSpec("sqlite", False, "NORMAL", False),
    # Reference: LangGraph's own checkpointing cost, no storage at all.
    SaverSpec("memory", True, "-", True),
]


def runs_at(spec: SaverSpec, durability: Durability) -> bool:
    # The extra rows (FastSqliteSaver at FULL, i.e. fsync per commit, and the in-memory
    # reference) only at durability "sync", to keep a full run near 3 minutes.
    extra = (spec.name == "fast" and spec.synchronous == "FULL") or spec.name == "memory"
    return durability == "sync" or not extra


def label(spec: SaverSpec) -> str:
    if spec.name == "memory":
        return "InMemorySaver (reference)"
    return f"{spec.name} {spec.synchronous}{' (default)' if spec.default else ''}"


@asynccontextmanager
async def open_async_saver(spec: SaverSpec, path: Path) -> AsyncIterator[Any]:
    if spec.name == "fast":
        async with FastSqliteSaver.from_path(path, synchronous=spec.synchronous) as saver:  # type: ignore[arg-type]
            yield saver
    elif spec.name == "memory":
        yield InMemorySaver()
    else:
        async with aiosqlite.connect(path) as conn:
            if spec.synchronous != "FULL":
                await conn.execute("PRAGMA journal_mode=WAL")
                await conn.execute("PRAGMA synchronous=NORMAL")
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            yield saver


@contextmanager
def open_sync_saver(spec: SaverSpec, path: Path) -> Iterator[Any]:
    # SqliteSaver: the sync saver LangGraph ships (setup() switches the file to WAL).
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        if spec.synchronous != "FULL":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()


# --- per-step measurement -----------------------------------------------------------------


def runs_for(shape: Shape) -> int:
    # One run per timed batch (five of the 10-node graph): 50-1000 steps.
    if shape == "L10":
        return 5
    return 1


async def measure_async(
    spec: SaverSpec,
    shape: Shape,
    state_kind: StateKind,
    durability: Durability,
    path: Path,
    loop_steps: int,
    runs: int,
) -> float:
    steps = steps_of(shape, loop_steps)
    async with open_async_saver(spec, path) as saver:
        graph = build_graph(shape, state_kind, True, saver)
        warm = min(steps, 10)
        out = await graph.ainvoke(
            graph_input(state_kind, warm),
            {"configurable": {"thread_id": "warm"}, "recursion_limit": steps + 10},
            durability=durability,
        )
        check(out, steps if shape != "loop1000" else warm, state_kind)
        t0 = time.perf_counter()
        outs = []
        for r in range(runs):
            outs.append(
                await graph.ainvoke(
                    graph_input(state_kind, steps),
                    {"configurable": {"thread_id": f"t{r}"}, "recursion_limit": steps + 10},
                    durability=durability,
                )
            )
        elapsed = time.perf_counter() - t0
    for out in outs:
        check(out, steps, state_kind)
    return elapsed / (runs * steps) * 1e6


def measure_sync(
    spec: SaverSpec,
    shape: Shape,
    state_kind: StateKind,
    durability: Durability,
    path: Path,
    loop_steps: int,
    runs: int,
) -> float:
    steps = steps_of(shape, loop_steps)
    with open_sync_saver(spec, path) as saver:
        graph = build_graph(shape, state_kind, False, saver)
        warm = min(steps, 10)
        out = graph.invoke(
            graph_input(state_kind, warm),
            {"configurable": {"thread_id": "warm"}, "recursion_limit": steps + 10},
            durability=durability,
        )
        check(out, steps if shape != "loop1000" else warm, state_kind)
        t0 = time.perf_counter()
        outs = []
        for r in range(runs):
            outs.append(
                graph.invoke(
                    graph_input(state_kind, steps),
                    {"configurable": {"thread_id": f"t{r}"}, "recursion_limit": steps + 10},
                    durability=durability,
                )
            )
        elapsed = time.perf_counter() - t0
    for out in outs:
        check(out, steps, state_kind)
    return elapsed / (runs * steps) * 1e6


# --- concurrency -----------------------------------------------------------------------------


CONC_SAVERS = [
    SaverSpec("fast", True, "NORMAL", True),
    SaverSpec("fast", True, "FULL", False),
    SaverSpec("asqlite", True, "FULL", True),
    SaverSpec("asqlite", True, "NORMAL", False),
]


async def measure_concurrent(
    spec: SaverSpec, durability: Durability, path: Path, n_runs: int
) -> float:
    async with open_async_saver(spec, path) as saver:
        graph = build_graph("L10", "counter", True, saver)
        await graph.ainvoke(
            graph_input("counter", 10),
            {"configurable": {"thread_id": "warm"}},
            durability=durability,
        )
        t0 = time.perf_counter()
        outs = await asyncio.gather(
            *(
                graph.ainvoke(
                    graph_input("counter", 10),
                    {"configurable": {"thread_id": f"c{i}"}},
                    durability=durability,
                )
                for i in range(n_runs)
            )
        )
        elapsed = time.perf_counter() - t0
        # untimed: every run finished and its stored state reached the end
        for i, out in enumerate(outs):
            check(out, 10, "counter")
            state = await graph.aget_state({"configurable": {"thread_id": f"c{i}"}})
            assert state.values["count"] == 10
    return n_runs / elapsed


# --- main ------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    """Median."""
    return statistics.median(values)


@dataclass
class Config:
    reps: int
    loop_steps: int
    quick: bool
    n_runs: int
    shapes: tuple[Shape, ...] = ("L10", "L100", "loop1000")
    states: tuple[StateKind, ...] = ("counter", "append")
    durabilities: tuple[Durability, ...] = ("sync", "async")


Results = dict[tuple[str, str, str, str], list[float]]
Conc = dict[tuple[str, str], list[float]]


async def collect(cfg: Config, tmp: Path) -> tuple[Results, Conc]:
    results: Results = {}
    conc: Conc = {}
    t_start = time.perf_counter()
    counter = 0
    # Interleaved: repetition r of every configuration before repetition r + 1.
    for rep in range(cfg.reps):
        for durability in cfg.durabilities:
            for state_kind in cfg.states:
                for shape in cfg.shapes:
                    for spec in SAVERS:
                        if not runs_at(spec, durability):
                            continue
                        counter += 1
                        path = tmp / f"{counter}.sqlite"
                        runs = runs_for(shape)
                        measure = measure_async if spec.is_async else measure_sync_in_loop
                        us = await measure(
                            spec, shape, state_kind, durability, path, cfg.loop_steps, runs
                        )
                        key = (label(spec), durability, state_kind, shape)
                        results.setdefault(key, []).append(us)
        for durability in cfg.durabilities:
            for spec in CONC_SAVERS:
                if not runs_at(spec, durability):
                    continue
                counter += 1
                path = tmp / f"{counter}.sqlite"
                rps = await measure_concurrent(spec, durability, path, cfg.n_runs)
                conc.setdefault((label(spec), durability), []).append(rps)
        elapsed = time.perf_counter() - t_start
        print(f"  rep {rep + 1}/{cfg.reps} done at {elapsed:.0f}s", file=sys.stderr)
    return results, conc


async def measure_sync_in_loop(
    spec: SaverSpec,
    shape: Shape,
    state_kind: StateKind,
    durability: Durability,
    path: Path,
    loop_steps: int,
    runs: int,
) -> float:
    return measure_sync(spec, shape, state_kind, durability, path, loop_steps, runs)


def report_steps(cfg: Config, results: Results) -> tuple[float, float, float]:
    """Print the per-step tables; return the worst sync ratios vs AsyncSqliteSaver."""
    cols = [(s, sh) for s in cfg.states for sh in cfg.shapes]
    names = {"L10": "L10", "L100": "L100", "loop1000": f"loop{cfg.loop_steps}"}
    col_names = " | ".join(f"{s} {names[sh]}" for s, sh in cols)
    print("## µs per step (median)")
    print()
    print(f"| saver | durability | {col_names} |")
    print("|" + "---|" * (2 + len(cols)))
    for durability in cfg.durabilities:
        for spec in SAVERS:
            if runs_at(spec, durability):
                cells = [f"{med(results[(label(spec), durability, s, sh)]):.0f}" for s, sh in cols]
                print(f"| {label(spec)} | {durability} | " + " | ".join(cells) + " |")
    print()
    print("## speed-up per step (other saver's µs / FastSqliteSaver's µs)")
    print()
    print(f"| comparison | durability | {col_names} | min |")
    print("|" + "---|" * (3 + len(cols)))
    fast, fast_full = label(SAVERS[0]), label(SAVERS[1])
    asqlite_full, asqlite_normal = label(SAVERS[2]), label(SAVERS[3])
    sqlite_full, sqlite_normal = label(SAVERS[4]), label(SAVERS[5])
    comparisons = [
        (asqlite_full, fast, "asqlite FULL (its default) / fast NORMAL (default)"),
        (asqlite_normal, fast, "asqlite NORMAL / fast NORMAL (same synchronous)"),
        (asqlite_full, fast_full, "asqlite FULL / fast FULL (same synchronous)"),
        (sqlite_full, fast, "sqlite FULL (its default) / fast NORMAL (default)"),
        (sqlite_normal, fast, "sqlite NORMAL / fast NORMAL (same synchronous)"),
    ]
    worst: dict[tuple[str, str], float] = {}
    for durability in cfg.durabilities:
        for other, mine, title in comparisons:
            if mine == fast_full and durability != "sync":
                continue
            ratios = [
                med(results[(other, durability, s, sh)]) / med(results[(mine, durability, s, sh)])
                for s, sh in cols
            ]
            worst[(other + mine, durability)] = min(ratios)
            cells = " | ".join(f"{r:.2f}x" for r in ratios)
            print(f"| {title} | {durability} | {cells} | {min(ratios):.2f}x |")
    print()
    return (
        worst[(asqlite_full + fast, "sync")],
        worst[(asqlite_normal + fast, "sync")],
        worst[(asqlite_full + fast_full, "sync")],
    )


def report_concurrency(cfg: Config, conc: Conc) -> tuple[float, float]:
    print(f"## {cfg.n_runs} concurrent 10-node runs, one shared saver (runs/s, median)")
    print()
    print("| saver | durability | runs/s | vs asqlite FULL (default) | vs asqlite NORMAL |")
    print("|---|---|---|---|---|")
    worst_default = worst_same = float("inf")
    for durability in cfg.durabilities:
        base_default = med(conc[(label(CONC_SAVERS[2]), durability)])
        base_normal = med(conc[(label(CONC_SAVERS[3]), durability)])
        for spec in CONC_SAVERS:
            if not runs_at(spec, durability):
                continue
            rps = med(conc[(label(spec), durability)])
            if spec.name == "fast" and spec.default:
                worst_default = min(worst_default, rps / base_default)
                worst_same = min(worst_same, rps / base_normal)
            print(
                f"| {label(spec)} | {durability} | {rps:.1f} | "
                f"{rps / base_default:.2f}x | {rps / base_normal:.2f}x |"
            )
    print()
    return worst_default, worst_same


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, 200-step loop")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--runs", type=int, default=100, help="concurrent runs")
    args = parser.parse_args()
    cfg = Config(
        reps=args.reps or (1 if args.quick else 3),
        loop_steps=200 if args.quick else 1000,
        quick=args.quick,
        n_runs=args.runs,
    )
    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    t0 = time.perf_counter()
    results, conc = await collect(cfg, tmp)
    print(
        f"# FastSqliteSaver benchmark: nproc={os.cpu_count()}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {cfg.reps} interleaved "
        f"reps (medians), loop = {cfg.loop_steps} steps, load avg {os.getloadavg()[0]:.2f}"
    )
    print()
    vs_default, vs_normal, full_vs_full = report_steps(cfg, results)
    conc_default, conc_same = report_concurrency(cfg, conc)
    print(
        "Targets at durability sync, worst over shapes and states: per step vs AsyncSqliteSaver "
        f"at its default {vs_default:.2f}x (target >= 3x), at the same synchronous "
        f"{vs_normal:.2f}x (NORMAL) / {full_vs_full:.2f}x (FULL); concurrent throughput vs "
        f"its default {conc_default:.2f}x (target >= 2x), same synchronous {conc_same:.2f}x. "
        f"Total {time.perf_counter() - t0:.0f}s."
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
