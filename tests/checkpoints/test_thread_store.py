"""The ThreadStore contract (threads of the LangGraph Server API), on every SQLite mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from checkpoints.sqlite import SqliteRunStore
from checkpoints.storage import open_runtime_storage
from checkpoints.store import RunRecord
from checkpoints.threads import ThreadRecord
from graph_runtime.models import Event, EventType, TaskStatus, utcnow


@pytest.fixture(params=["sqlite", "sqlite-shared"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteRunStore]:
    if request.param == "sqlite":
        async with SqliteRunStore.open(tmp_path / "runs.db") as sqlite_store:
            yield sqlite_store
    else:
        async with open_runtime_storage(tmp_path / "runs.db") as storage:
            assert isinstance(storage.store, SqliteRunStore)
            yield storage.store


async def test_create_get_update_delete(store: SqliteRunStore) -> None:
    record = ThreadRecord(thread_id="t1", metadata={"user": "ada"})
    created, fresh = await store.create_thread(record)
    assert fresh and created == record
    again, fresh = await store.create_thread(ThreadRecord(thread_id="t1", graph_id="other"))
    assert not fresh and again == record  # a taken id keeps the first record
    assert await store.get_thread("t1") == record
    assert await store.get_thread("nope") is None
    updated = await store.update_thread(
        "t1", graph_id="wf", metadata={"user": "ada", "x": 1}, input_keys=["b", "a"]
    )
    assert updated is not None and updated.updated_at >= record.updated_at
    assert (updated.graph_id, updated.input_keys) == ("wf", ("b", "a"))
    assert await store.get_thread("t1") == updated
    assert await store.update_thread("nope", graph_id="wf") is None
    with pytest.raises(TypeError):
        await store.update_thread("t1", created_at="yesterday")
    assert await store.delete_thread("t1") is True
    assert await store.delete_thread("t1") is False
    assert await store.get_thread("t1") is None


async def test_list_threads_by_ids_oldest_first(store: SqliteRunStore) -> None:
    for name in ("a", "b", "c"):
        await store.create_thread(ThreadRecord(thread_id=name))
    assert [t.thread_id for t in await store.list_threads()] == ["a", "b", "c"]
    assert [t.thread_id for t in await store.list_threads(["c", "a", "zz"])] == ["a", "c"]
    assert await store.list_threads([]) == []


async def test_concurrent_creates_of_one_id_make_one_thread(store: SqliteRunStore) -> None:
    results = await asyncio.gather(
        *(store.create_thread(ThreadRecord(thread_id="t", graph_id=str(i))) for i in range(10))
    )
    assert sum(fresh for _, fresh in results) == 1
    assert len({r.graph_id for r, _ in results}) == 1


async def test_list_runs_by_thread(store: SqliteRunStore) -> None:
    now = utcnow()
    for run_id, thread_id in (("r1", "t"), ("r2", "u"), ("r3", "t")):
        run: Any = RunRecord(
            run_id=run_id,
            workflow_id="wf",
            workflow_version=1,
            thread_id=thread_id,
            status=TaskStatus.PENDING,
            priority=5,
            input={},
            created_at=now,
            updated_at=now,
        )
        await store.create_run(run, Event(run_id=run_id, id=1, type=EventType.STATUS))
    assert [r.run_id for r in await store.list_runs(thread_id="t")] == ["r1", "r3"]
    assert [r.run_id for r in await store.list_runs(thread_id="none")] == []
