"""The execution service over HTTP: throughput, SSE latency, a long run, a concurrent burst.

Starts ``graph-runtime serve`` in a subprocess on a free loopback port and a fresh SQLite
file, then drives it with the Python client (``graph_runtime.sdk.AsyncClient``) from this
process, so client and server share the machine's 2 cores as real users would:

1. 500 runs of a 10-node workflow submitted by 50 concurrent clients, each following its
   run's SSE stream to ``end`` (every step persisted): runs/s.
2. SSE latency on 50 sequential runs: submit → first ``step`` event, and submit → ``end``;
   p50/p95.
3. One 1000-step run: total time, and a check that all 1000 step records are stored.
4. 100 runs submitted at once: wall time and the number that did not complete.

Usage: ``python bench/bench_service.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from graph_runtime.models import EventType
from graph_runtime.sdk import AsyncClient

ROOT = Path(__file__).resolve().parent.parent


def linear(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "type": "transform", "config": {"set": {"count": "state.count + 1"}}}
        for i in range(n)
    ]
    edges = [{"from": "__start__" if i == 0 else f"n{i - 1}", "to": f"n{i}"} for i in range(n)]
    edges.append({"from": f"n{n - 1}", "to": "__end__"})
    return {
        "schema": "graph-runtime/workflow/v1",
        "id": f"linear{n}",
        "settings": {"recursion_limit": n + 10},
        "state": {"count": {"type": "integer", "default": 0}},
        "nodes": nodes,
        "edges": edges,
    }


def loop(n: int) -> dict[str, Any]:
    return {
        "schema": "graph-runtime/workflow/v1",
        "id": f"loop{n}",
        "settings": {"recursion_limit": n + 10},
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def follow(client: AsyncClient, run_id: str) -> str:
    status = "?"
    async for event in client.stream(run_id):
        if event.type is EventType.END:
            status = str(event.data.get("status"))
    return status


async def throughput(client: AsyncClient, runs: int, clients: int) -> tuple[float, int]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        queue.put_nowait(i)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while not queue.empty():
            queue.get_nowait()
            run = await client.submit("linear10", {})
            if await follow(client, run.execution_id) != "completed":
                failed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return runs / (time.perf_counter() - t0), failed


async def latency(client: AsyncClient, n: int) -> tuple[list[float], list[float]]:
    first_step: list[float] = []
    end: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        run = await client.submit("linear10", {})
        seen_step = False
        async for event in client.stream(run.execution_id):
            if event.type is EventType.STEP and not seen_step:
                first_step.append((time.perf_counter() - t0) * 1000)
                seen_step = True
            if event.type is EventType.END:
                end.append((time.perf_counter() - t0) * 1000)
    return first_step, end


async def long_run(client: AsyncClient, steps: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    run = await client.submit(f"loop{steps}", {})
    status = await follow(client, run.execution_id)
    elapsed = time.perf_counter() - t0
    assert status == "completed", status
    return elapsed, len(await client.steps(run.execution_id))


async def burst(client: AsyncClient, n: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(client.submit("linear10", {}) for _ in range(n)))
    statuses = await asyncio.gather(*(follow(client, r.execution_id) for r in runs))
    return time.perf_counter() - t0, sum(s != "completed" for s in statuses)


async def bench(base_url: str, quick: bool) -> None:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    transport = httpx.AsyncHTTPTransport(limits=limits)
    async with AsyncClient(base_url, timeout=120, transport=transport) as client:
        await client.save_workflow(linear(10))
        await client.save_workflow(loop(1000))
        await throughput(client, 20, 5)  # warm-up
        runs = 100 if quick else 500
        rate, failed = await throughput(client, runs, 50)
        print(
            f"throughput: {runs} runs of 10 nodes, 50 concurrent clients: {rate:.1f} runs/s"
            f" ({failed} failed)"
        )
        first, end = await latency(client, 20 if quick else 50)
        print(
            f"SSE submit→first step event: p50 {statistics.median(first):.1f} ms,"
            f" p95 {pct(first, 0.95):.1f} ms"
        )
        print(
            f"SSE submit→end event (10 nodes): p50 {statistics.median(end):.1f} ms,"
            f" p95 {pct(end, 0.95):.1f} ms"
        )
        elapsed, stored = await long_run(client, 1000)
        print(f"1000-step run: {elapsed:.2f} s total, {stored} step records stored")
        wall, failures = await burst(client, 100)
        print(f"100 concurrent runs: {wall:.2f} s wall, {failures} failures")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GRAPH_RUNTIME_MAX_CONCURRENT_RUNS": "64"}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--port",
                str(port),
                "--db",
                str(Path(tmp) / "bench.db"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.1)
            asyncio.run(bench(base_url, args.quick))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
