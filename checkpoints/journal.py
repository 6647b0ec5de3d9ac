"""The write-failure journal: run-store records the database refused, kept until it takes them.

When the database refuses a write (locked past its busy timeout, disk full, read-only), the
run store appends the write's rows to an append-only JSONL file beside the database,
``<db>.journal.jsonl`` (the name never comes from client input), and fsyncs it. The rows are
replayed into the store, in journal order and ahead of every later write, in the first
transaction that commits: the next successful write, a periodic retry, or the next start.
Every row has an idempotency key (an event ``(run_id, id)``, a step ``(run_id, task_id,
attempt)``, a log its id), so a replay that is cut and runs again writes nothing twice.

A torn last line (the process died while appending) is skipped with a warning; so is any other
line that is not a journal entry. The file is created ``0600``: it holds run data.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL_SUFFIX", "JournalEntry", "WriteJournal", "journal_path"]

logger = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal.jsonl"

JournalEntry = dict[str, Any]
"""One refused write: ``{"run_id": ..., "events": [rows], "steps": [rows], "logs": [rows]}``."""

_KINDS = ("events", "steps", "logs")


def journal_path(db: str | Path) -> Path:
    """The journal of database ``db``: ``<db>.journal.jsonl`` in the same folder."""
    path = Path(db)
    return path.with_name(path.name + JOURNAL_SUFFIX)


class WriteJournal:
    """Refused writes of one database, oldest first, on disk and in memory.

    Thread-safe: the store appends on its event loop, the writer replays and drops on
    whichever thread commits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # (entry, token): the token is the caller's, handed back by snapshot() (the store
        # keeps there what to call once the entry is in the database).
        entries, clean = _load(path)
        self._entries: list[tuple[JournalEntry, object]] = [(entry, None) for entry in entries]
        self._fd: int | None = None
        if not clean:
            # Appending after a torn line would glue the next entry to it.
            with self._lock:
                if self._entries:
                    self._rewrite()
                else:
                    _truncate(path)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def pending(self) -> Callable[[], int]:
        """How many entries wait, as a function to call before every commit.

        The list's own ``__len__``: read atomically without the lock, and no Python call.
        """
        return self._entries.__len__

    @property
    def records(self) -> int:
        """Rows waiting (events, steps and log lines)."""
        with self._lock:
            return sum(len(e.get(k, ())) for e, _ in self._entries for k in _KINDS)

    def append(self, entry: JournalEntry, token: object = None) -> None:
        """Append ``entry`` and fsync it.

        Raises:
            OSError: the file cannot be written (the entry is then not kept).
        """
        line = (json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _write_all(self._fd, line)
            os.fsync(self._fd)
            self._entries.append((entry, token))

    def snapshot(self) -> list[tuple[JournalEntry, object]]:
        """The entries waiting, oldest first, with their tokens."""
        with self._lock:
            return list(self._entries)

    def drop(self, count: int) -> None:
        """Forget the ``count`` oldest entries (they are in the database now)."""
        with self._lock:
            del self._entries[:count]
            if self._entries:
                self._rewrite()
            else:
                if self._fd is not None:
                    os.ftruncate(self._fd, 0)
                    os.fsync(self._fd)
                elif self.path.exists():
                    _truncate(self.path)

    def close(self) -> None:
        """Close the file; an empty journal is removed."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if not self._entries:
                self.path.unlink(missing_ok=True)

    def _rewrite(self) -> None:
        # Caller holds the lock. Write the rest to a new file and swap it in, so a crash
        # leaves either the old journal or the new one, never half of one.
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for entry, _ in self._entries:
                line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"
                _write_all(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _truncate(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load(path: Path) -> tuple[list[JournalEntry], bool]:
    """The entries of the journal at ``path``, and whether every line was one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], True
    entries: list[JournalEntry] = []
    clean = True
    lines = data.split(b"\n")
    # Every complete line ends with a newline, so the last element is what follows the
    # last newline: empty, or a torn line.
    complete, tail = lines[:-1], lines[-1]
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        if not _is_entry(entry):
            logger.warning("journal %s: line %d is not a journal entry; skipped", path, number)
            clean = False
            continue
        entries.append(entry)
    if tail.strip():
        logger.warning("journal %s: skipped a torn last line (%d bytes)", path, len(tail))
        clean = False
    return entries, clean


def _is_entry(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("run_id"), str)
        and all(isinstance(entry.get(k, []), list) for k in _KINDS)
        and all(isinstance(row, dict) for k in _KINDS for row in entry.get(k, []))
    )
