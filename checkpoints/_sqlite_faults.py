"""SQLite errors that mean the database refuses writes, as opposed to a bad statement."""

from __future__ import annotations

import sqlite3

__all__ = ["is_storage_fault"]

# The database as a whole refuses writes: busy or locked past the timeout, out of memory,
# read-only, an I/O error, corrupt, full, cannot be opened, not a database. Every operation
# of a batch would fail the same way, so the writer fails the batch whole.
_STORAGE_FAULTS = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 26})
_FAULT_WORDS = ("locked", "busy", "readonly", "read-only", "disk", "full", "i/o", "unable to open")


def is_storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is the database refusing writes.

    Busy or locked past the busy timeout, disk full, read-only, I/O error and the like: a
    condition of the database, not of the statement, that goes away once an operator (or
    the other connection) fixes it. A constraint violation or a bad statement is not one.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.OperationalError | sqlite3.DatabaseError) and not (
            isinstance(current, sqlite3.IntegrityError | sqlite3.ProgrammingError)
        ):
            code = getattr(current, "sqlite_errorcode", None)
            if code is not None:
                if (code & 0xFF) in _STORAGE_FAULTS:
                    return True
            elif any(word in str(current).lower() for word in _FAULT_WORDS):
                return True
        current = current.__cause__ or current.__context__
    return False
