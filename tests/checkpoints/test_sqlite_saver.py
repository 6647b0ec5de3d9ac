"""FastSqliteSaver on real LangGraph graphs and a real SQLite file.

The graph scenarios run on FastSqliteSaver and on LangGraph's AsyncSqliteSaver and must
produce the same results (``test_same_history_as_async_sqlite_saver`` compares whole
state histories). The rest covers what only FastSqliteSaver has: the sync interface,
blob storage, sharing the file, migration, batching, lock handling.
"""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Interrupt, Send, interrupt

from checkpoints.sqlite_saver import FastSqliteSaver

Saver = BaseCheckpointSaver[Any]
SAVERS = ["fast", "aiosqlite"]


async def _open(kind: str, path: Path) -> tuple[Saver, Callable[[], Awaitable[None]]]:
    if kind == "fast":
        cm: Any = FastSqliteSaver.from_path(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        cm = AsyncSqliteSaver.from_conn_string(str(path))
    saver = await cm.__aenter__()

    async def close() -> None:
        await cm.__aexit__(None, None, None)

    return saver, close


@pytest.fixture(params=SAVERS)
async def saver(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Saver]:
    s, close = await _open(request.param, tmp_path / "data" / "graph.sqlite")
    try:
        yield s
    finally:
        await close()


def cfg(thread_id: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, **extra}}


# --- scenarios (shared by the per-saver tests and the cross-saver comparison) --------


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


async def scenario_interrupt(saver: Saver) -> dict[str, Any]:
    calls: list[str] = []

    async def before(s: Log) -> dict[str, Any]:
        calls.append("before")
        return {"log": ["before"]}

    async def ask(s: Log) -> dict[str, Any]:
        calls.append("ask")
        name = interrupt({"question": "name?"})
        return {"log": [f"name={name}"]}

    async def after(s: Log) -> dict[str, Any]:
        calls.append("after")
        return {"log": ["after"]}

    g = StateGraph(Log)
    g.add_node("before", before)
    g.add_node("ask", ask)
    g.add_node("after", after)
    g.add_edge(START, "before")
    g.add_edge("before", "ask")
    g.add_edge("ask", "after")
    g.add_edge("after", END)
    graph = g.compile(checkpointer=saver)
    config = cfg("interrupt")

    first = await graph.ainvoke({"log": []}, config)
    assert first["log"] == ["before"]
    assert [i.value for i in first["__interrupt__"]] == [{"question": "name?"}]
    paused = await graph.aget_state(config)
    assert paused.next == ("ask",)
    assert [i.value for t in paused.tasks for i in t.interrupts] == [{"question": "name?"}]

    done = await graph.ainvoke(Command(resume="Ada"), config)
    assert done["log"] == ["before", "name=Ada", "after"]
    # `ask` runs again on resume (that is how interrupt works); `before` does not.
    assert calls == ["before", "ask", "ask", "after"]
    return {"final": done["log"], "calls": calls}


async def scenario_resume_after_failure(saver: Saver) -> dict[str, Any]:
    calls: list[str] = []

    async def a(s: Log) -> dict[str, Any]:
        calls.append("a")
        return {"log": ["a"]}

    async def b(s: Log) -> dict[str, Any]:
        calls.append("b")
        if calls.count("b") == 1:
            raise RuntimeError("transient failure")
        return {"log": ["b"]}

    async def c(s: Log) -> dict[str, Any]:
        calls.append("c")
        return {"log": ["c"]}

    g = StateGraph(Log)
    for name, fn in (("a", a), ("b", b), ("c", c)):
        g.add_node(name, fn)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    graph = g.compile(checkpointer=saver)
    config = cfg("failure")

    with pytest.raises(RuntimeError, match="transient failure"):
        await graph.ainvoke({"log": []}, config)
    failed = await graph.aget_state(config)
    assert failed.next == ("b",)
    assert failed.values["log"] == ["a"]
    assert any(t.error for t in failed.tasks)

    done = await graph.ainvoke(None, config)
    assert done["log"] == ["a", "b", "c"]
    assert calls == ["a", "b", "b", "c"]
    return {"final": done["log"], "calls": calls}


class Count(TypedDict):
    count: int
    log: Annotated[list[str], operator.add]


def _linear_counter(saver: Saver, names: list[str], *, sync_nodes: bool = False) -> Any:
    g = StateGraph(Count)
    prev = START
    for name in names:

        async def node(s: Count, name: str = name) -> dict[str, Any]:
            return {"count": s["count"] + 1, "log": [name]}

        def sync_node(s: Count, name: str = name) -> dict[str, Any]:
            return {"count": s["count"] + 1, "log": [name]}

        g.add_node(name, sync_node if sync_nodes else node)
        g.add_edge(prev, name)
        prev = name
    g.add_edge(prev, END)
    return g.compile(checkpointer=saver)


async def scenario_time_travel(saver: Saver) -> dict[str, Any]:
    graph = _linear_counter(saver, ["a", "b", "c"])
    config = cfg("travel")
    out = await graph.ainvoke({"count": 0, "log": []}, config)
    assert out == {"count": 3, "log": ["a", "b", "c"]}
    history = [s async for s in graph.aget_state_history(config)]
    # input, after START, a, b, c
    assert [s.next for s in history] == [(), ("c",), ("b",), ("a",), ("__start__",)]
    before_b = history[2]
    assert before_b.values == {"count": 1, "log": ["a"]}

    # Replay from the checkpoint before `b`: b and c run again on top of it.
    replayed = await graph.ainvoke(None, before_b.config)
    assert replayed == {"count": 3, "log": ["a", "b", "c"]}

    # Fork: change the state at that checkpoint, then continue from the fork.
    forked_config = await graph.aupdate_state(before_b.config, {"count": 10, "log": ["edit"]})
    forked = await graph.ainvoke(None, forked_config)
    assert forked == {"count": 12, "log": ["a", "edit", "b", "c"]}

    latest = await graph.aget_state(config)
    assert latest.values == forked
    # The original branch is still there, untouched.
    original = await graph.aget_state(history[0].config)
    assert original.values == {"count": 3, "log": ["a", "b", "c"]}
    all_history = [s async for s in graph.aget_state_history(config)]
    return {
        "replayed": replayed,
        "forked": forked,
        "n_checkpoints": len(all_history),
        "sources": [s.metadata["source"] for s in all_history if s.metadata],
    }


class SubState(TypedDict):
    log: Annotated[list[str], operator.add]


async def scenario_subgraph(saver: Saver) -> dict[str, Any]:
    async def s1(s: SubState) -> dict[str, Any]:
        return {"log": ["s1"]}

    async def s2(s: SubState) -> dict[str, Any]:
        answer = interrupt("approve?")
        return {"log": [f"s2:{answer}"]}

    sub = StateGraph(SubState)
    sub.add_node("s1", s1)
    sub.add_node("s2", s2)
    sub.add_edge(START, "s1")
    sub.add_edge("s1", "s2")
    sub.add_edge("s2", END)

    async def p1(s: SubState) -> dict[str, Any]:
        return {"log": ["p1"]}

    async def p2(s: SubState) -> dict[str, Any]:
        return {"log": ["p2"]}

    parent = StateGraph(SubState)
    parent.add_node("p1", p1)
    parent.add_node("sub", sub.compile())
    parent.add_node("p2", p2)
    parent.add_edge(START, "p1")
    parent.add_edge("p1", "sub")
    parent.add_edge("sub", "p2")
    parent.add_edge("p2", END)
    graph = parent.compile(checkpointer=saver)
    config = cfg("subgraph")

    first = await graph.ainvoke({"log": []}, config)
    assert [i.value for i in first["__interrupt__"]] == ["approve?"]
    state = await graph.aget_state(config, subgraphs=True)
    assert state.next == ("sub",)
    sub_state = state.tasks[0].state
    assert sub_state is not None and not isinstance(sub_state, dict)
    assert sub_state.values["log"] == ["p1", "s1"]
    assert sub_state.next == ("s2",)
    # The subgraph's checkpoints live in their own namespace.
    sub_ns = sub_state.config["configurable"]["checkpoint_ns"]
    assert sub_ns.startswith("sub:")

    done = await graph.ainvoke(Command(resume="yes"), config)
    assert done["log"] == ["p1", "p1", "s1", "s2:yes", "p2"]
    return {
        "final": done["log"],
        "n_root": len([s async for s in graph.aget_state_history(config)]),
    }


class MapState(TypedDict):
    items: list[int]
    results: Annotated[list[int], operator.add]
    total: int


async def scenario_send(saver: Saver) -> dict[str, Any]:
    async def fan(s: MapState) -> dict[str, Any]:
        return {}

    def route(s: MapState) -> list[Send]:
        return [Send("work", {"x": x}) for x in s["items"]]

    async def work(s: dict[str, Any]) -> dict[str, Any]:
        return {"results": [s["x"] * s["x"]]}

    async def reduce(s: MapState) -> dict[str, Any]:
        return {"total": sum(s["results"])}

    g = StateGraph(MapState)
    g.add_node("fan", fan)
    g.add_node("work", work)
    g.add_node("reduce", reduce)
    g.add_edge(START, "fan")
    g.add_conditional_edges("fan", route, ["work"])
    g.add_edge("work", "reduce")
    g.add_edge("reduce", END)
    graph = g.compile(checkpointer=saver)
    config = cfg("send")
    out = await graph.ainvoke({"items": [1, 2, 3, 4, 5], "results": [], "total": 0}, config)
    assert sorted(out["results"]) == [1, 4, 9, 16, 25]
    assert out["total"] == 55
    return {"results": out["results"], "total": out["total"]}


class Branches(TypedDict):
    log: Annotated[list[str], operator.add]


async def scenario_failed_parallel_branch(saver: Saver) -> dict[str, Any]:
    calls: list[str] = []

    async def start(s: Branches) -> dict[str, Any]:
        calls.append("start")
        return {"log": ["start"]}

    async def left(s: Branches) -> dict[str, Any]:
        calls.append("left")
        return {"log": ["left"]}

    async def right(s: Branches) -> dict[str, Any]:
        calls.append("right")
        # Fail only after `left` has finished, so its writes are saved first.
        await asyncio.sleep(0.01)
        if calls.count("right") == 1:
            raise ValueError("right branch failed")
        return {"log": ["right"]}

    async def join(s: Branches) -> dict[str, Any]:
        calls.append("join")
        return {"log": ["join"]}

    g = StateGraph(Branches)
    for name, fn in (("start", start), ("left", left), ("right", right), ("join", join)):
        g.add_node(name, fn)
    g.add_edge(START, "start")
    g.add_edge("start", "left")
    g.add_edge("start", "right")
    g.add_edge(["left", "right"], "join")
    g.add_edge("join", END)
    graph = g.compile(checkpointer=saver)
    config = cfg("parallel")

    with pytest.raises(ValueError, match="right branch failed"):
        await graph.ainvoke({"log": []}, config)
    failed = await graph.aget_state(config)
    # `left` finished (its writes are saved), so only `right` is still to run
    assert failed.next == ("right",)
    by_name = {t.name: t for t in failed.tasks}
    # The successful branch's writes are kept as pending writes of the checkpoint...
    assert by_name["left"].result == {"log": ["left"]}
    assert by_name["right"].error is not None
    tup = await saver.aget_tuple(failed.config)
    assert tup is not None and tup.pending_writes
    assert ("log", ["left"]) in [(c, v) for _, c, v in tup.pending_writes]

    # ...so on resume only the failed branch runs again.
    done = await graph.ainvoke(None, config)
    assert calls == ["start", "left", "right", "right", "join"]
    assert sorted(done["log"]) == sorted(["start", "left", "right", "join"])
    return {"final": done["log"], "calls": calls}


def _extend(state: list[int], writes: Sequence[list[int]]) -> list[int]:
    return [*state, *(x for w in writes for x in w)]


class DeltaState(TypedDict):
    items: Annotated[list[int], DeltaChannel(_extend, snapshot_frequency=4)]
    count: int


async def scenario_delta_channel(saver: Saver) -> dict[str, Any]:
    # DeltaChannel (beta) stores only writes between snapshots and rebuilds the value
    # through the saver's ancestor walk: the growing-state case done right.
    async def step(s: DeltaState) -> dict[str, Any]:
        return {"items": [s["count"]], "count": s["count"] + 1}

    g = StateGraph(DeltaState)
    g.add_node("step", step)
    g.add_edge(START, "step")
    g.add_conditional_edges("step", lambda s: "step" if s["count"] < 10 else END, ["step", END])
    graph = g.compile(checkpointer=saver)
    config = cfg("delta")
    out = await graph.ainvoke({"items": [], "count": 0}, config)
    assert out["items"] == list(range(10))
    history = [s async for s in graph.aget_state_history(config)]
    middle = next(s for s in history if s.values.get("count") == 5)
    assert middle.values["items"] == list(range(5))
    forked = await graph.ainvoke(None, middle.config)
    assert forked["items"] == list(range(10))
    return {"final": out["items"], "forked": forked["items"]}


SCENARIOS: dict[str, Callable[[Saver], Awaitable[dict[str, Any]]]] = {
    "interrupt": scenario_interrupt,
    "resume_after_failure": scenario_resume_after_failure,
    "time_travel": scenario_time_travel,
    "subgraph": scenario_subgraph,
    "send": scenario_send,
    "failed_parallel_branch": scenario_failed_parallel_branch,
    "delta_channel": scenario_delta_channel,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_scenario(saver: Saver, scenario: str) -> None:
    await SCENARIOS[scenario](saver)


def _norm(value: Any) -> str:
    # Interrupt IDs hash the checkpoint's namespace/ID, which differ between runs.
    if isinstance(value, list) and value and all(isinstance(v, Interrupt) for v in value):
        return repr([v.value for v in value])
    return repr(value)


async def _history(saver: Saver, thread_id: str) -> list[Any]:
    """Everything observable about a thread, minus IDs and timestamps."""
    out = []
    async for tup in saver.alist({"configurable": {"thread_id": thread_id}}):
        md = {k: v for k, v in tup.metadata.items() if k not in ("run_id", "parents")}
        out.append(
            (
                tup.config["configurable"]["checkpoint_ns"].split(":")[0],
                md,
                tup.parent_config is not None,
                sorted(tup.checkpoint["channel_values"].items(), key=lambda kv: kv[0]),
                sorted(tup.checkpoint["channel_versions"]),
                sorted((c, _norm(v)) for _, c, v in tup.pending_writes or []),
            )
        )
    return out


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_same_history_as_async_sqlite_saver(tmp_path: Path, scenario: str) -> None:
    histories = []
    results = []
    for kind in SAVERS:
        s, close = await _open(kind, tmp_path / kind / "graph.sqlite")
        try:
            results.append(await SCENARIOS[scenario](s))
            thread = {
                "interrupt": "interrupt",
                "resume_after_failure": "failure",
                "time_travel": "travel",
                "subgraph": "subgraph",
                "send": "send",
                "failed_parallel_branch": "parallel",
                "delta_channel": "delta",
            }[scenario]
            histories.append(await _history(s, thread))
        finally:
            await close()
    assert results[0] == results[1]
    assert len(histories[0]) == len(histories[1])
    # List order (by checkpoint ID) can differ between checkpoints made in the same
    # microsecond; compare as multisets.
    assert sorted(map(repr, histories[0])) == sorted(map(repr, histories[1]))


# --- FastSqliteSaver only -----------------------------------------------------------------


def test_sync_interface_invoke(tmp_path: Path) -> None:
    def a(s: Count) -> dict[str, Any]:
        return {"count": s["count"] + 1, "log": ["a"]}

    def b(s: Count) -> dict[str, Any]:
        answer = interrupt("go?")
        return {"count": s["count"] + 1, "log": [f"b:{answer}"]}

    g = StateGraph(Count)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", END)
    with FastSqliteSaver.open(tmp_path / "nested" / "dir" / "sync.sqlite") as saver:
        graph = g.compile(checkpointer=saver)
        config = cfg("sync")
        first = graph.invoke({"count": 0, "log": []}, config, durability="sync")
        assert first["count"] == 1
        assert graph.get_state(config).next == ("b",)
        done = graph.invoke(Command(resume="ok"), config)
        assert done == {"count": 2, "log": ["a", "b:ok"]}
        # input, then steps 0 (a), 1 (paused before b), 2 (b done)
        assert len(list(graph.get_state_history(config))) == 4
        assert len(list(saver.list(None, limit=2))) == 2
    assert (tmp_path / "nested" / "dir" / "sync.sqlite").exists()


async def test_sync_calls_from_the_event_loop_thread(tmp_path: Path) -> None:
    # Unlike AsyncSqliteSaver, the sync methods work anywhere, even inside the loop.
    async with FastSqliteSaver.from_path(tmp_path / "x.sqlite") as saver:
        graph = _linear_counter(saver, ["a", "b"])
        await graph.ainvoke({"count": 0, "log": []}, cfg("t"))
        assert graph.get_state(cfg("t")).values["count"] == 2
        assert saver.get_tuple(cfg("t")) is not None


class Doc(TypedDict):
    doc: str | list[str]
    count: int


async def test_unchanged_channels_are_not_rewritten(tmp_path: Path) -> None:
    big = [f"paragraph {i} " * 20 for i in range(200)]  # ~50 KB, never changes

    async def load(s: Doc) -> dict[str, Any]:
        return {"doc": big}

    async def step(s: Doc) -> dict[str, Any]:
        return {"count": s["count"] + 1}

    g = StateGraph(Doc)
    g.add_node("load", load)
    g.add_node("step", step)
    g.add_edge(START, "load")
    g.add_edge("load", "step")
    g.add_conditional_edges("step", lambda s: "step" if s["count"] < 30 else END, ["step", END])
    path = tmp_path / "blobs.sqlite"
    async with FastSqliteSaver.from_path(path) as saver:
        graph = g.compile(checkpointer=saver)
        out = await graph.ainvoke({"doc": [], "count": 0}, cfg("b"), durability="sync")
        assert out["count"] == 30 and out["doc"] == big
        # Every checkpoint still sees the document, rebuilt from its single blob.
        history = [s async for s in graph.aget_state_history(cfg("b"))]
        assert all(s.values["doc"] == big for s in history[:-2])
    conn = sqlite3.connect(path)
    try:
        versions = conn.execute("SELECT COUNT(*) FROM lg_blobs WHERE channel = 'doc'").fetchone()[0]
        # the input's empty list and the loaded document: two versions, not 30 copies
        assert versions == 2
        sizes = [
            r[0]
            for r in conn.execute(
                "SELECT length(checkpoint) FROM lg_checkpoints ORDER BY checkpoint_id"
            )
        ]
        assert max(sizes) < 2000, sizes  # checkpoints do not carry the document
    finally:
        conn.close()


async def test_shares_the_file_with_foreign_tables(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE workflows (id TEXT PRIMARY KEY, body TEXT)")
    conn.execute("CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("INSERT INTO workflows VALUES ('w1', '{}')")
    conn.execute("INSERT INTO checkpoints (note) VALUES ('not langgraph')")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    async with FastSqliteSaver.from_path(path) as saver:
        graph = _linear_counter(saver, ["a"])
        await graph.ainvoke({"count": 0, "log": []}, cfg("t"))
        await saver.adelete_thread("t")
        await saver.aprune(["t"], strategy="delete")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT * FROM workflows").fetchall() == [("w1", "{}")]
        assert conn.execute("SELECT note FROM checkpoints").fetchall() == [("not langgraph",)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"lg_checkpoints", "lg_blobs", "lg_writes", "lg_meta"} <= tables
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_migrate_from_async_sqlite_saver(tmp_path: Path) -> None:
    path = tmp_path / "legacy.sqlite"

    async def ask(s: Count) -> dict[str, Any]:
        answer = interrupt("continue?")
        return {"count": s["count"] + 1, "log": [f"ask:{answer}"]}

    async def a(s: Count) -> dict[str, Any]:
        return {"count": s["count"] + 1, "log": ["a"]}

    def build(saver: Saver) -> Any:
        g = StateGraph(Count)
        g.add_node("a", a)
        g.add_node("ask", ask)
        g.add_edge(START, "a")
        g.add_edge("a", "ask")
        g.add_edge("ask", END)
        return g.compile(checkpointer=saver)

    async with AsyncSqliteSaver.from_conn_string(str(path)) as legacy:
        graph = build(legacy)
        await graph.ainvoke({"count": 0, "log": []}, cfg("old"))
        old_history = [s async for s in graph.aget_state_history(cfg("old"))]

    async with FastSqliteSaver.from_path(path) as saver:
        result = await saver.amigrate_from_sqlite_saver()
        assert result.checkpoints == len(old_history)
        assert result.writes > 0
        # idempotent
        assert (await saver.amigrate_from_sqlite_saver()).checkpoints == len(old_history)
        graph = build(saver)
        migrated = [s async for s in graph.aget_state_history(cfg("old"))]
        assert [s.values for s in migrated] == [s.values for s in old_history]
        assert [s.next for s in migrated] == [s.next for s in old_history]
        paused = await graph.aget_state(cfg("old"))
        assert [i.value for t in paused.tasks for i in t.interrupts] == ["continue?"]
        done = await graph.ainvoke(Command(resume="yes"), cfg("old"))
        assert done == {"count": 2, "log": ["a", "ask:yes"]}
    # the source tables are still there
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == len(old_history)
    finally:
        conn.close()


async def test_list_filters_on_graph_checkpoints(tmp_path: Path) -> None:
    async with FastSqliteSaver.from_path(tmp_path / "l.sqlite") as saver:
        graph = _linear_counter(saver, ["a", "b", "c"])
        await graph.ainvoke({"count": 0, "log": []}, cfg("t"))
        await graph.ainvoke({"count": 0, "log": []}, cfg("u"))
        all_t = [t async for t in saver.alist(cfg("t"))]
        assert len(all_t) == 5
        ids = [t.checkpoint["id"] for t in all_t]
        assert ids == sorted(ids, reverse=True)
        loops = [t async for t in saver.alist(cfg("t"), filter={"source": "loop"})]
        assert [t.metadata["step"] for t in loops] == [3, 2, 1, 0]
        assert [t async for t in saver.alist(cfg("t"), filter={"step": 2, "source": "loop"})]
        page = [t async for t in saver.alist(cfg("t"), before=all_t[1].config, limit=2)]
        assert [t.checkpoint["id"] for t in page] == ids[2:4]
        assert len([t async for t in saver.alist(None)]) == 10
        with pytest.raises(ValueError, match="invalid metadata filter key"):
            [t async for t in saver.alist(cfg("t"), filter={"a'b": 1})]


async def test_copy_prune_delete_on_graph_threads(tmp_path: Path) -> None:
    async with FastSqliteSaver.from_path(tmp_path / "m.sqlite") as saver:
        graph = _linear_counter(saver, ["a", "b", "c"])
        await graph.ainvoke({"count": 0, "log": []}, cfg("src"))
        await saver.acopy_thread("src", "dst")
        assert (await graph.aget_state(cfg("dst"))).values == {"count": 3, "log": ["a", "b", "c"]}
        # the copy is a full thread: continue it
        out = await graph.ainvoke({"count": 10, "log": []}, cfg("dst"))
        assert out["count"] == 13
        await saver.aprune(["dst"], strategy="keep_latest")
        assert len([t async for t in saver.alist(cfg("dst"))]) == 1
        assert (await graph.aget_state(cfg("dst"))).values["count"] == 13
        out = await graph.ainvoke({"count": 0, "log": []}, cfg("dst"))
        assert out["count"] == 3
        assert (await graph.aget_state(cfg("src"))).values["count"] == 3
        await saver.adelete_thread("src")
        assert await saver.aget_tuple(cfg("src")) is None
    conn = sqlite3.connect(tmp_path / "m.sqlite")
    try:
        assert (
            conn.execute("SELECT COUNT(*) FROM lg_blobs WHERE thread_id='src'").fetchone()[0] == 0
        )
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


async def test_concurrent_runs_share_commits(tmp_path: Path) -> None:
    async with FastSqliteSaver.from_path(tmp_path / "c.sqlite") as saver:
        graph = _linear_counter(saver, [f"n{i}" for i in range(10)])
        stop = threading.Event()
        reads: list[int] = []

        def reader() -> None:
            # A reader in another thread, on its own connection, while runs commit.
            while not stop.is_set():
                reads.append(len(list(saver.list(None, limit=5))))

        t = threading.Thread(target=reader)
        t.start()
        try:
            outs = await asyncio.gather(
                *(graph.ainvoke({"count": 0, "log": []}, cfg(f"r{i}")) for i in range(40))
            )
        finally:
            stop.set()
            t.join()
        assert all(o["count"] == 10 for o in outs)
        # 40 runs x 11 checkpoints and their writes, in far fewer transactions
        writer = saver._writer
        assert writer.operations >= 40 * 11
        assert writer.commits < writer.operations / 2, (writer.commits, writer.operations)
        for i in range(40):
            state = await graph.aget_state(cfg(f"r{i}"))
            assert state.values["count"] == 10
        assert reads


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
async def test_durability_modes(tmp_path: Path, synchronous: str, durability: str) -> None:
    path = tmp_path / "d.sqlite"
    async with FastSqliteSaver.from_path(path, synchronous=synchronous) as saver:  # type: ignore[arg-type]
        graph = _linear_counter(saver, ["a", "b", "c"])
        # a single run: each superstep's writes and checkpoint share one commit
        await graph.ainvoke({"count": 0, "log": []}, cfg("single"), durability=durability)
        if durability == "sync":
            assert saver._writer.commits <= 5, saver._writer.commits
        outs = await asyncio.gather(
            *(
                graph.ainvoke({"count": 0, "log": []}, cfg(f"t{i}"), durability=durability)
                for i in range(5)
            )
        )
        assert all(o["count"] == 3 for o in outs)
    # a fresh saver (new connections) sees everything
    async with FastSqliteSaver.from_path(path) as saver:
        for i in range(5):
            tup = await saver.aget_tuple(cfg(f"t{i}"))
            assert tup is not None and tup.checkpoint["channel_values"]["count"] == 3


async def test_waits_for_another_connections_lock_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    async with FastSqliteSaver.from_path(path) as saver:
        graph = _linear_counter(saver, ["a", "b"])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick_task = asyncio.create_task(ticker())
        run = asyncio.create_task(graph.ainvoke({"count": 0, "log": []}, cfg("t")))
        await asyncio.sleep(0.3)
        assert not run.done()
        # the event loop kept running while the save waited for the lock
        assert ticks > 20
        other.execute("COMMIT")
        other.close()
        out = await asyncio.wait_for(run, 5)
        tick_task.cancel()
        assert out["count"] == 2
        # after the contention the writer commits on the loop again
        out = await graph.ainvoke({"count": 0, "log": []}, cfg("u"))
        assert out["count"] == 2


async def test_lock_timeout_fails_the_save(tmp_path: Path) -> None:
    path = tmp_path / "timeout.sqlite"
    saver = FastSqliteSaver(path, busy_timeout=0.2)
    try:
        graph = _linear_counter(saver, ["a"])
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await graph.ainvoke({"count": 0, "log": []}, cfg("t"), durability="sync")
        finally:
            other.execute("ROLLBACK")
            other.close()
        out = await graph.ainvoke({"count": 0, "log": []}, cfg("t2"))
        assert out["count"] == 1
    finally:
        await saver.aclose()


async def test_a_failing_operation_does_not_fail_its_batch(tmp_path: Path) -> None:
    async with FastSqliteSaver.from_path(tmp_path / "f.sqlite") as saver:
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        graph = _linear_counter(saver, ["a"])
        await graph.ainvoke({"count": 0, "log": []}, cfg("t"))
        tup = await saver.aget_tuple(config)
        assert tup is not None

        def bad(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO lg_meta (key, value) VALUES (NULL, NULL)")

        writer = saver._writer
        results = await asyncio.gather(
            saver.aput_writes(tup.config, [("x", 1)], "task-1"),
            writer.submit_async(bad),
            saver.aput_writes(tup.config, [("y", 2)], "task-2"),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], sqlite3.IntegrityError)
        tup = await saver.aget_tuple(tup.config)
        assert tup is not None
        assert {(c, v) for _, c, v in tup.pending_writes or []} >= {("x", 1), ("y", 2)}


async def test_allow_list_and_custom_types(tmp_path: Path) -> None:
    from decimal import Decimal

    async with FastSqliteSaver.from_path(tmp_path / "s.sqlite") as saver:
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        cp = {
            "v": 4,
            "id": "1f000000-0000-6000-8000-000000000001",
            "ts": "2024-01-01T00:00:00+00:00",
            "channel_values": {"d": Decimal("1.5"), "s": {1, 2}, "n": None, "f": 0.5},
            "channel_versions": {"d": "1", "s": "1", "n": "1", "f": "1"},
            "versions_seen": {},
            "updated_channels": None,
        }
        stored = await saver.aput(config, cp, {}, {"d": "1", "s": "1", "n": "1", "f": "1"})  # type: ignore[arg-type]
        tup = await saver.aget_tuple(stored)
        assert tup is not None
        assert tup.checkpoint["channel_values"] == {
            "d": Decimal("1.5"),
            "s": {1, 2},
            "n": None,
            "f": 0.5,
        }


def test_versions_sort_after_langgraph_sqlite_versions(tmp_path: Path) -> None:
    with FastSqliteSaver.open(tmp_path / "v.sqlite") as saver:
        old = "00000000000000000000000000000041.0.7251638582939573"
        nxt = saver.get_next_version(old, None)
        assert nxt > old and nxt.startswith("0000000042.")
        chain = [saver.get_next_version(None, None)]
        for _ in range(20):
            chain.append(saver.get_next_version(chain[-1], None))
        assert chain == sorted(chain) and len(set(chain)) == len(chain)
        assert saver.get_next_version(7, None).startswith("0000000008.")  # type: ignore[arg-type]


def test_rejects_memory_databases() -> None:
    with pytest.raises(ValueError, match="memory"):
        FastSqliteSaver(":memory:")


async def test_closed_saver_refuses_writes(tmp_path: Path) -> None:
    saver = FastSqliteSaver(tmp_path / "c.sqlite")
    await saver.aclose()
    await saver.aclose()  # idempotent
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "x"}}
    with pytest.raises(RuntimeError, match="closed"):
        await saver.aput_writes(config, [("a", 1)], "task")


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with FastSqliteSaver.open(path) as saver:
        graph = _linear_counter(saver, ["a"], sync_nodes=True)
        graph.invoke({"count": 0, "log": []}, cfg("t"))
    with FastSqliteSaver.open(path) as saver:
        tup = saver.get_tuple(cfg("t"))
        assert tup is not None and tup.checkpoint["channel_values"]["count"] == 1
