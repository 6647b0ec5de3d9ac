"""Fault scenarios about time: pause across parallel branches, timeouts, retries with backoff,
and the side effects of a node cut by ``kill -9``.

The server runs in a subprocess (``ServerProcess``; ``GRAPH_RUNTIME_HTTP_ALLOW_HOSTS`` lets its
``http`` nodes call ``127.0.0.1``), and its ``http`` nodes call a ``CounterStub`` in this
process at ``/<run id>/<node id>``: the stub's counts are the side effects each node had, per
run. A scenario that completes is compared with the same workflow's fault-free run on the same
server (``helpers.fault_checks``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.counter_stub import CounterStub
from helpers.fault_checks import (
    API,
    check_events,
    check_like_baseline,
    completed_steps,
    events,
    status_of,
    submit,
    unowned,
    wait_step,
)
from helpers.server_process import ServerProcess
from helpers.waits import wait_for_status
from helpers.workflows import SCHEMA, SLOW

pytestmark = pytest.mark.timeout(120)

# http nodes may call the stub on loopback (SSRF protection refuses it otherwise).
LOOPBACK = {"GRAPH_RUNTIME_HTTP_ALLOW_HOSTS": "127.0.0.1"}

# Backoff of the retried node: 0.2 s, then 0.4 s, each stretched by up to 25% (jitter).
ATTEMPTS, BASE, FACTOR, JITTER = 3, 0.2, 2.0, 0.25
RETRY: dict[str, Any] = {
    "max_attempts": ATTEMPTS,
    "initial_interval": BASE,
    "backoff_factor": FACTOR,
    "max_interval": 30,
    "jitter": True,
    "retry_on": ["E002", "E003"],
}
# A loaded 2-core box may oversleep a lot; a delay may never be shorter than asked.
CLOCK_SLACK = 0.01
OVERSLEEP = 3.0


# -- fixtures and workflows -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub() -> Iterator[CounterStub]:
    """One stub for the module; every run calls its own paths (``/<run id>/...``)."""
    with CounterStub() as counter:
        yield counter


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the scenarios that do not kill it (start-up is the slow part).

    Each scenario uses its own run ids. ``tests.sleep_sync`` is registered as a tool.
    """
    db = tmp_path_factory.mktemp("timing") / "runs.db"
    # The tool module lives beside the tests: put them on the server's import path.
    tools = {
        "GRAPH_RUNTIME_TOOLS": "helpers.blocking_tools:TOOLS",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    with ServerProcess(db, **LOOPBACK, **tools) as process:
        yield process


def call(stub: CounterStub, node_id: str, **policies: Any) -> dict[str, Any]:
    """An ``http`` node calling ``/<run id>/<node_id>`` on the stub; the body goes to state."""
    config = {"url": stub.url("/{{ run.id }}/" + node_id), "response": {"output": node_id}}
    return {"id": node_id, "type": "http", "config": config, **policies}


def workflow(
    workflow_id: str, calls: list[dict[str, Any]], edges: list[tuple[Any, Any]]
) -> dict[str, Any]:
    """start -> ``calls`` (wired by ``edges``) -> out; out selects every call's response."""
    keys = [c["id"] for c in calls]
    return {
        "schema": SCHEMA,
        "id": workflow_id,
        "state": {k: {"type": "object", "default": {}} for k in keys},
        "nodes": [
            {"id": "start", "type": "input", "config": {}},
            *calls,
            {"id": "out", "type": "output", "config": {"select": {k: f"state.{k}" for k in keys}}},
        ],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }


def linear(stub: CounterStub) -> dict[str, Any]:
    """start -> a -> b -> c -> out, each of a, b, c one call."""
    calls = [call(stub, x) for x in "abc"]
    edges = [("start", "a"), ("a", "b"), ("b", "c"), ("c", "out")]
    return workflow("linear", calls, edges)


def fan(stub: CounterStub) -> dict[str, Any]:
    """start -> (p1 | p2) -> out: two parallel branches in one superstep, joined."""
    calls = [call(stub, "p1"), call(stub, "p2")]
    return workflow("fan", calls, [("start", ["p1", "p2"]), (["p1", "p2"], "out")])


def retried(stub: CounterStub) -> dict[str, Any]:
    """start -> flaky -> out; ``flaky`` retried per RETRY."""
    calls = [call(stub, "flaky", retry=RETRY)]
    return workflow("retried", calls, [("start", "flaky"), ("flaky", "out")])


# -- helpers ------------------------------------------------------------------------------------


def steps_of(client: httpx.Client, run_id: str, node: str | None = None) -> list[dict[str, Any]]:
    """The run's step records (of ``node`` only, when given), in record order."""
    steps: list[dict[str, Any]] = client.get(f"{API}/{run_id}/steps").json()["steps"]
    return [s for s in steps if node is None or s["step"] == node]


def wait_end(client: httpx.Client, run_id: str) -> dict[str, Any]:
    return wait_for_status(
        client, run_id, "completed", "failed", "timed_out", "stopped", timeout=20
    )


def _at(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# -- I6: side effects of a node cut by kill -9 (R01) ----------------------------------------------


def test_kill_mid_node_calls_finished_nodes_once_and_the_cut_node_again(
    tmp_path: Path, stub: CounterStub
) -> None:
    doc = linear(stub)
    with ServerProcess(tmp_path / "runs.db", **LOOPBACK) as server:
        stub.hold("/k/b")  # b's request stays in flight until released
        submit(server.client, "k", doc)
        stub.wait_calls("/k/b", 1)  # a finished, b is running
        assert [s["step"] for s in completed_steps(server.client, "k")] == ["start", "a"]
        server.kill()
        stub.release("/k/b")  # too late: the process that sent it is gone
        server.start()  # recovery resumes the run from the checkpoint after a
        submit(server.client, "k-base", doc)
        path = check_like_baseline(server, "k", "k-base")
        cut = steps_of(server.client, "k", "b")
    assert ("running", "crashed") in path and ("crashed", "running") in path
    # I6: 1 for the nodes finished before the kill and after it, 2 for the cut one.
    assert stub.counts("/k/") == {"/k/a": 1, "/k/b": 2, "/k/c": 1}
    assert stub.counts("/k-base/") == {"/k-base/a": 1, "/k-base/b": 1, "/k-base/c": 1}
    assert [s["completed"] for s in cut] == [True], cut  # the cut attempt left no record


# -- R18: pause with parallel branches ------------------------------------------------------------


def test_pause_with_parallel_branches_lands_after_the_slow_branch(
    server: ServerProcess, stub: CounterStub
) -> None:
    client = server.client
    doc = fan(stub)
    stub.hold("/q/p2")
    submit(client, "q", doc)
    stub.wait_calls("/q/p2", 1)  # p2 in flight
    wait_step(client, "q", "p1")  # p1 finished
    assert client.post(f"{API}/q/pause").status_code == 202
    # The pause waits for the superstep boundary: p2 is still running, nothing was cut.
    assert status_of(client, "q")["status"] == "running"
    assert steps_of(client, "q", "p2") == []
    stub.release("/q/p2")
    wait_for_status(client, "q", "paused", timeout=20)
    landed = {s["step"]: s for s in steps_of(client, "q")}
    assert landed["p1"]["completed"] and landed["p2"]["completed"], landed
    assert "out" not in landed  # paused before the next superstep
    assert client.post(f"{API}/q/resume").status_code == 202
    submit(client, "q-base", doc)
    path = check_like_baseline(server, "q", "q-base")
    assert ("running", "paused") in path and ("paused", "running") in path
    # Resuming re-ran neither branch (I6 = 1), and each has one record: no second attempt.
    assert stub.counts("/q/") == {"/q/p1": 1, "/q/p2": 1}
    for node in ("p1", "p2"):
        assert [s["attempt"] for s in steps_of(client, "q", node)] == [1], node


# -- R20: timeouts --------------------------------------------------------------------------------


# start -> block -> out; ``block`` runs a synchronous tool that sleeps ``input.seconds``.
SYNC_BLOCK: dict[str, Any] = {
    "schema": SCHEMA,
    "id": "sync-block",
    "nodes": [
        {"id": "start", "type": "input", "config": {}},
        {
            "id": "block",
            "type": "tool",
            "config": {
                "tool": "tests.sleep_sync",
                "args": {"seconds": "input.seconds"},
                "output": "slept",
            },
        },
        {"id": "out", "type": "output", "config": {"select": {"slept": "state.slept"}}},
    ],
    "edges": [{"from": "start", "to": "block"}, {"from": "block", "to": "out"}],
}


def test_a_run_past_its_timeout_ends_timed_out(server: ServerProcess) -> None:
    client = server.client
    bounded = {**SLOW, "id": "bounded", "settings": {"timeout_seconds": 1}}
    submit(client, "by-request", SLOW, timeout=1, seconds=30, tag="t")
    submit(client, "by-settings", bounded, seconds=30, tag="t")
    # A node blocked in synchronous code (30 s) does not hold the run past its timeout.
    submit(client, "sync", SYNC_BLOCK, timeout=1, seconds=30)
    cut_nodes = {"by-request": "nap", "by-settings": "nap", "sync": "block"}
    for run_id, node in cut_nodes.items():
        done = wait_end(client, run_id)
        assert done["status"] == "timed_out", done
        assert done["error_code"] == "E002", done
        assert done["result"] is None
        path = check_events(events(client, run_id))
        assert path[-1] == ("running", "timed_out"), path
        cut = steps_of(client, run_id, node)
        assert len(cut) == 1 and not cut[0]["completed"] and cut[0]["error_code"], cut
        assert "out" not in {s["step"] for s in steps_of(client, run_id)}
    assert unowned(server.db) == []


def test_the_step_cut_by_a_run_timeout_is_recorded_as_a_timeout(
    server: ServerProcess,
) -> None:
    client = server.client
    submit(client, "t", SLOW, timeout=0.5, seconds=30, tag="t")
    assert wait_end(client, "t")["status"] == "timed_out"
    [cut] = steps_of(client, "t", "nap")
    assert not cut["completed"]
    # The run timed out (E002); nobody asked it to stop (E004).
    assert cut["error_code"] == "E002", cut
    assert cut["status"] in ("timed_out", "failed"), cut
    assert "stop" not in cut["error_message"], cut


def test_a_node_timeout_is_retried_with_one_record_per_attempt(
    server: ServerProcess, stub: CounterStub
) -> None:
    client = server.client
    policy = {**RETRY, "initial_interval": 0.05, "jitter": False}
    doc = workflow(
        "stuck",
        [call(stub, "stuck", timeout=0.3, retry=policy)],
        [("start", "stuck"), ("stuck", "out")],
    )
    once = workflow(
        "stuck-once", [call(stub, "stuck", timeout=0.3)], [("start", "stuck"), ("stuck", "out")]
    )
    stub.hold("/n/stuck")  # never answers in time
    stub.hold("/one/stuck")
    submit(client, "n", doc)
    submit(client, "one", once)
    done = wait_end(client, "n")
    assert done["status"] == "failed" and done["error_code"] == "E005", done
    attempts = steps_of(client, "n", "stuck")
    assert [s["attempt"] for s in attempts] == [1, 2, 3], attempts
    assert not any(s["completed"] for s in attempts)
    # Each attempt timed out (E002); the last one is recorded as the exhausted retry (E005).
    assert [s["error_code"] for s in attempts] == ["E002", "E002", "E005"], attempts
    assert all("0.3s timeout" in s["error_message"] for s in attempts), attempts
    assert "failed after 3 attempts" in attempts[-1]["error_message"]
    assert stub.count("/n/stuck") <= 3  # no attempt sent its request twice
    path = check_events(events(client, "n"))
    assert path[-1] == ("running", "failed"), path
    # Without a retry policy the first timeout ends the run: timed_out, E002.
    single = wait_end(client, "one")
    assert single["status"] == "timed_out" and single["error_code"] == "E002", single
    [attempt] = steps_of(client, "one", "stuck")
    assert (attempt["attempt"], attempt["error_code"]) == (1, "E002"), attempt
    assert stub.count("/one/stuck") <= 1
    path = check_events(events(client, "one"))
    assert path[-1] == ("running", "timed_out"), path
    stub.release("/n/stuck")
    stub.release("/one/stuck")
    assert unowned(server.db) == []


# -- R21: retries with backoff --------------------------------------------------------------------


def test_retries_back_off_then_succeed_or_exhaust(server: ServerProcess, stub: CounterStub) -> None:
    client = server.client
    doc = retried(stub)
    stub.fail("/ok/flaky", times=2)  # 500, 500, then 200
    stub.fail("/bad/flaky")  # 500 every time
    submit(client, "ok", doc)
    submit(client, "bad", doc)
    submit(client, "ok-base", doc)
    check_like_baseline(server, "ok", "ok-base")

    attempts = steps_of(client, "ok", "flaky")
    assert [s["attempt"] for s in attempts] == [1, 2, 3], attempts
    assert [s["error_code"] for s in attempts] == ["E003", "E003", None], attempts
    assert [s["completed"] for s in attempts] == [False, False, True]
    assert stub.count("/ok/flaky") == 3
    arrivals = stub.times("/ok/flaky")
    for k in (1, 2):
        delay = BASE * FACTOR ** (k - 1)
        recorded = (
            _at(attempts[k]["started_at"]) - _at(attempts[k - 1]["finished_at"])
        ).total_seconds()
        assert delay - CLOCK_SLACK <= recorded <= delay * (1 + JITTER) + OVERSLEEP, (k, recorded)
        # Seen from the stub: the next request came no sooner than the backoff.
        assert arrivals[k] - arrivals[k - 1] >= delay - CLOCK_SLACK, (k, arrivals)

    failed = wait_end(client, "bad")
    assert failed["status"] == "failed" and failed["error_code"] == "E005", failed
    assert "failed after 3 attempts" in failed["error"]
    exhausted = steps_of(client, "bad", "flaky")
    assert [s["attempt"] for s in exhausted] == [1, 2, 3], exhausted
    assert [s["error_code"] for s in exhausted] == ["E003", "E003", "E005"], exhausted
    assert stub.count("/bad/flaky") == ATTEMPTS
    path = check_events(events(client, "bad"))
    assert path[-1] == ("running", "failed"), path
    assert unowned(server.db) == []
