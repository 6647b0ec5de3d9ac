"""Checkpointer factories: one scoped context manager per backend.

Loop-bound savers (``AsyncSqliteSaver`` captures the running loop) are created inside the
context manager, on the loop that will use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver

from checkpoints._aiosqlite_shared import open_async_sqlite_saver
from checkpoints.sqlite_saver import FastSqliteSaver

__all__ = ["CheckpointerKind", "open_checkpointer"]

CheckpointerKind = Literal["sqlite", "langgraph-sqlite"]


@asynccontextmanager
async def open_checkpointer(
    path: str | Path, *, kind: CheckpointerKind = "sqlite"
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """Open the checkpointer for a SQLite database file (created with its parent folders).

    Args:
        path: the database file.
        kind: ``"sqlite"`` (``FastSqliteSaver``, the default) or ``"langgraph-sqlite"``
            (LangGraph's ``AsyncSqliteSaver``, for comparison and migration).
    """
    db = Path(path)
    db.parent.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite":
        async with FastSqliteSaver.from_path(db) as fast:
            yield fast
        return
    async with open_async_sqlite_saver(db) as (saver, _conn):
        yield saver
