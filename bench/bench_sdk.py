"""One ``langgraph-sdk`` workload against our server and the reference ``langgraph dev`` server.

Both servers run at once as subprocesses on loopback with the same graphs (``_sdk_graphs.py``:
LangGraph modules for the reference, workflow documents for us) and the same worker count;
tracing is off. Each phase runs on one server, then on the other (the order alternates between
repetitions; medians are reported), so load from elsewhere on the machine hits both alike. The
same async client code measures:

* sequential ``runs.wait`` latency p50/p95 (``--runs`` runs, each on a fresh thread);
* throughput with ``--clients`` concurrent clients doing ``runs.wait`` (runs/s);
* ``runs.stream`` time to the first event and to the end (p50);
* a ``--loop-steps``-step loop via ``runs.wait``.

We persist every step (checkpoint, step record, events) to SQLite; ``langgraph dev`` keeps
everything in memory. The reference server comes from ``langgraph-cli[inmem]`` in its own venv
(``--setup`` makes it: ``.venv-reference``), so its extras (uvloop, httptools, ...) never leak
into the project's venv. Without it (``--no-reference``, or it does not start) the bench
measures our server alone and says so.

Usage: ``python bench/bench_sdk.py [--quick] [--setup] [--no-reference]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk import get_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sdk_graphs import WORKFLOWS

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_VENV = ROOT / ".venv-reference"
REFERENCE_PACKAGES = ["langgraph-cli[inmem]", "langgraph==1.2.22", "langgraph-sdk==0.4.14"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start within {timeout:.0f} s")


@contextmanager
def serve(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*cmd, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def ours(tmp: Path, workers: int) -> Any:
    folder = tmp / "workflows"
    folder.mkdir()
    for workflow in WORKFLOWS:
        (folder / f"{workflow['id']}.json").write_text(json.dumps(workflow))
    env = {**os.environ, "GRAPH_RUNTIME_MAX_CONCURRENT_RUNS": str(workers)}
    cmd = [str(Path(sys.executable).parent / "graph-runtime"), "serve"]
    cmd += ["--db", str(tmp / "bench.db"), "--workflows", str(folder)]
    return serve(cmd, env, ROOT, tmp / "ours.log")


def reference(tmp: Path, workers: int) -> Any:
    config = {
        "dependencies": ["."],
        "graphs": {"short": "./_sdk_graphs.py:short", "loop": "./_sdk_graphs.py:loop"},
    }
    shutil.copy(Path(__file__).with_name("_sdk_graphs.py"), tmp / "_sdk_graphs.py")
    (tmp / "langgraph.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "VIRTUAL_ENV"}
    env.update(
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        PATH=f"{REFERENCE_VENV / 'bin'}:{env.get('PATH', '')}",
    )
    cmd = [str(REFERENCE_VENV / "bin" / "langgraph"), "dev", "--no-browser", "--no-reload"]
    cmd += ["--config", str(tmp / "langgraph.json"), "--n-jobs-per-worker", str(workers)]
    return serve(cmd, env, tmp, tmp / "reference.log")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def warm_up(url: str) -> None:
    client = get_client(url=url, timeout=600)
    for _ in range(5):  # imports, compile caches, connections
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "short", input={"count": 0})


async def latency(url: str, runs: int) -> dict[str, float]:
    client = get_client(url=url, timeout=600)
    took = []
    for _ in range(runs):
        thread = await client.threads.create()
        t0 = time.perf_counter()
        result = await client.runs.wait(thread["thread_id"], "short", input={"count": 0})
        took.append(time.perf_counter() - t0)
        assert result["count"] == 3, result
    return {"wait_p50_ms": pct(took, 0.5) * 1000, "wait_p95_ms": pct(took, 0.95) * 1000}


async def throughput(url: str, runs: int, clients: int) -> dict[str, float]:
    remaining = runs

    async def worker() -> None:
        # One SDK client per simulated client: 50 connections in one httpx pool would cost
        # the load generator O(connections) per request (httpcore scans its pool).
        nonlocal remaining
        own = get_client(url=url, timeout=600)
        while remaining > 0:
            remaining -= 1
            thread = await own.threads.create()
            await own.runs.wait(thread["thread_id"], "short", input={"count": 0})

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"throughput_runs_s": runs / (time.perf_counter() - t0)}


async def streams(url: str, runs: int) -> dict[str, float]:
    client = get_client(url=url, timeout=600)
    first, total = [], []
    for _ in range(runs):
        thread = await client.threads.create()
        t0 = time.perf_counter()
        seen_first = None
        async for _part in client.runs.stream(
            thread["thread_id"], "short", input={"count": 0}, stream_mode="values"
        ):
            seen_first = seen_first or time.perf_counter()
        first.append((seen_first or time.perf_counter()) - t0)
        total.append(time.perf_counter() - t0)
    return {
        "stream_first_p50_ms": pct(first, 0.5) * 1000,
        "stream_end_p50_ms": pct(total, 0.5) * 1000,
    }


async def loop(url: str, steps: int) -> dict[str, float]:
    client = get_client(url=url, timeout=600)
    thread = await client.threads.create()
    t0 = time.perf_counter()
    result = await client.runs.wait(
        thread["thread_id"],
        "loop",
        input={"count": 0, "limit": steps},
        config={"recursion_limit": steps * 2 + 10},
    )
    assert result["count"] == steps, result
    return {"loop_s": time.perf_counter() - t0}


def phases(args: argparse.Namespace) -> list[tuple[int, Callable[[str], Any]]]:
    """(repetitions, phase): cheap phases repeat, interleaved between the servers."""
    return [
        (1, lambda url: latency(url, args.runs)),
        (args.reps, lambda url: throughput(url, args.throughput_runs, args.clients)),
        (1, lambda url: streams(url, args.stream_runs)),
        (args.reps, lambda url: loop(url, args.loop_steps)),
    ]


def measure(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float] | None]:
    """Both servers up at once; each phase runs on one, then the other (order alternating)."""
    with tempfile.TemporaryDirectory(prefix="bench-sdk-") as d:
        tmp = Path(d)
        (tmp / "ours").mkdir()
        (tmp / "reference").mkdir()
        with ExitStack() as stack:
            urls = {"ours": stack.enter_context(ours(tmp / "ours", args.clients))}
            if args.reference:
                try:
                    urls["reference"] = stack.enter_context(
                        reference(tmp / "reference", args.clients)
                    )
                except RuntimeError as exc:
                    log = (tmp / "reference" / "reference.log").read_text(errors="replace")
                    print(f"reference: {exc}\n{log[-2000:]}", file=sys.stderr)
            for name, url in urls.items():
                print(f"{name}: serving on {url}", file=sys.stderr)
                asyncio.run(warm_up(url))
            samples: dict[str, dict[str, list[float]]] = {name: {} for name in urls}
            for reps, phase in phases(args):
                for rep in range(reps):
                    order = list(urls) if rep % 2 == 0 else list(reversed(urls))
                    for name in order:
                        for key, value in asyncio.run(phase(urls[name])).items():
                            samples[name].setdefault(key, []).append(value)
            result = {
                name: {k: statistics.median(v) for k, v in got.items()}
                for name, got in samples.items()
            }
    return result["ours"], result.get("reference")


def setup_reference() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(REFERENCE_VENV)], check=True)
    pip = str(REFERENCE_VENV / "bin" / "pip")
    subprocess.run([pip, "install", "-q", *REFERENCE_PACKAGES], check=True)


ROWS: list[tuple[str, str, bool]] = [
    ("wait_p50_ms", "runs.wait latency p50 (ms)", False),
    ("wait_p95_ms", "runs.wait latency p95 (ms)", False),
    ("throughput_runs_s", "throughput, concurrent clients (runs/s)", True),
    ("stream_first_p50_ms", "runs.stream first event p50 (ms)", False),
    ("stream_end_p50_ms", "runs.stream to the end p50 (ms)", False),
    ("loop_s", "loop via runs.wait (s)", False),
]


def report(mine: dict[str, float], ref: dict[str, float] | None, args: argparse.Namespace) -> None:
    print(
        f"\nbench_sdk: {args.runs} sequential waits, {args.clients} clients x "
        f"{args.throughput_runs} runs, {args.stream_runs} streams, {args.loop_steps}-step loop"
    )
    if ref is None:
        print("reference server: not measured (see above); our server alone:\n")
        for key, label, _ in ROWS:
            print(f"| {label:<42} | {mine[key]:>10.1f} |")
        return
    print("ratio: reference / ours for times, ours / reference for throughput (> 1: we win)\n")
    print(f"| {'metric':<42} | {'ours':>10} | {'langgraph dev':>13} | {'ratio':>6} |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 15}|{'-' * 8}|")
    for key, label, higher_is_better in ROWS:
        a, b = mine[key], ref[key]
        ratio = a / b if higher_is_better else b / a
        print(f"| {label:<42} | {a:>10.1f} | {b:>13.1f} | {ratio:>5.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--throughput-runs", type=int, default=1000)
    parser.add_argument("--stream-runs", type=int, default=50)
    parser.add_argument("--loop-steps", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of cheap phases")
    parser.add_argument("--quick", action="store_true", help="a smaller workload")
    parser.add_argument("--setup", action="store_true", help="make .venv-reference first")
    parser.add_argument("--no-reference", action="store_true", help="measure our server only")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.throughput_runs, args.stream_runs = 30, 150, 10
        args.loop_steps, args.reps, args.clients = 200, 1, 20
    if args.setup:
        setup_reference()
    args.reference = not args.no_reference
    if args.reference and not (REFERENCE_VENV / "bin" / "langgraph").exists():
        print("reference: no .venv-reference (run with --setup)", file=sys.stderr)
        args.reference = False
    mine, ref = measure(args)
    report(mine, ref, args)


if __name__ == "__main__":
    main()
