"""Thread records: the ``ThreadStore`` protocol and the record its backends share.

A thread of the LangGraph Server API is a LangGraph thread that outlives its runs. Its *state*
is the checkpointer's (read through the workflow's compiled graph); its runs are rows of
``runs`` with its ``thread_id``; its record holds the rest: the workflow it belongs to, client
metadata, the input keys its runs used, timestamps. Its status is derived from its runs and
its newest checkpoint on every read, so nothing here can go stale.

``SqliteRunStore`` implements this protocol beside ``RunStore`` (migration ``0002_threads``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from checkpoints._rows import dt_required, dt_to_db, json_dumps, json_loads
from graph_runtime.models import utcnow

__all__ = ["THREAD_FIELDS", "ThreadRecord", "ThreadRow", "ThreadStore"]

#: Fields ``update_thread`` may change.
THREAD_FIELDS = frozenset({"graph_id", "metadata", "input_keys"})


class ThreadRow(TypedDict):
    """One raw row of the ``threads`` table."""

    thread_id: str
    graph_id: str | None
    metadata: str
    input_keys: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadRecord:
    """One thread: a row of ``threads``."""

    thread_id: str
    """UUID."""
    graph_id: str | None = None
    """The workflow its runs run; None until its first run (or a create with a graph id)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Client metadata (plus ``graph_id`` and ``assistant_id`` once bound)."""
    input_keys: tuple[str, ...] = ()
    """Input keys of its runs: the state keys of a workflow without a ``state`` block."""
    created_at: dt.datetime = field(default_factory=utcnow)
    """When it was created."""
    updated_at: dt.datetime = field(default_factory=utcnow)
    """Last change of the record."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ThreadRecord:
        """Build a record from a ``threads`` row."""
        return cls(
            thread_id=row["thread_id"],
            graph_id=row["graph_id"],
            metadata=json_loads(row["metadata"]),
            input_keys=tuple(json_loads(row["input_keys"])),
            created_at=dt_required(row["created_at"]),
            updated_at=dt_required(row["updated_at"]),
        )

    def to_row(self) -> ThreadRow:
        """The ``threads`` row of this record (JSON and timestamps as text)."""
        return ThreadRow(
            thread_id=self.thread_id,
            graph_id=self.graph_id,
            metadata=json_dumps(self.metadata),
            input_keys=json_dumps(list(self.input_keys)),
            created_at=dt_to_db(self.created_at) or "",
            updated_at=dt_to_db(self.updated_at) or "",
        )


class ThreadStore(Protocol):
    """Durable thread records, by id. Writes are durable when the call returns."""

    async def create_thread(self, record: ThreadRecord) -> tuple[ThreadRecord, bool]:
        """Insert ``record``; ``(existing, False)`` when the id is taken."""
        ...

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        """The thread, or None."""
        ...

    async def update_thread(self, thread_id: str, **fields: Any) -> ThreadRecord | None:
        """Change :data:`THREAD_FIELDS` (and ``updated_at``); None when there is no thread.

        Raises:
            TypeError: a field that cannot be changed.
        """
        ...

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the record (not its runs or checkpoints); False when there was none."""
        ...

    async def list_threads(self, ids: Collection[str] | None = None) -> list[ThreadRecord]:
        """Every thread (or those of ``ids``), oldest first."""
        ...
