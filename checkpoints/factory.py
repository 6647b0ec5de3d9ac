"""Checkpointer factories: one scoped context manager per backend.

Loop-bound savers (``AsyncSqliteSaver`` captures the running loop) are created inside the
context manager, on the loop that will use them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

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
    conn = await aiosqlite.connect(str(db))
    try:
        # WAL lets readers run beside the writer; busy_timeout absorbs short lock waits.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver
    finally:
        await conn.close()
