"""Schema migrations: numbered, append-only ``.sql`` files applied in order.

``checkpoints/migrations/<dialect>/NNNN_name.sql`` files are applied once each, in version
order, each in its own transaction together with its row in ``graph_runtime_migrations``
(version, name, checksum, applied_at). A shipped file is never edited: the checksum of every
applied file is compared on each start, and an edited file (or a database migrated by a newer
graph-runtime) stops the start-up with a ``StoreError`` instead of running on a schema that
does not match the code.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Literal, LiteralString

from graph_runtime.errors import StoreError
from graph_runtime.models import utcnow

__all__ = ["Migration", "load_migrations", "migrate"]

Dialect = Literal["sqlite"]

CREATE_MIGRATIONS_TABLE: LiteralString = """
CREATE TABLE IF NOT EXISTS graph_runtime_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""
SELECT_APPLIED: LiteralString = (
    "SELECT version, name, checksum FROM graph_runtime_migrations ORDER BY version"
)
SELECT_ONE_APPLIED: LiteralString = "SELECT 1 FROM graph_runtime_migrations WHERE version = ?"
INSERT_APPLIED: LiteralString = (
    "INSERT INTO graph_runtime_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)"
)
BEGIN_IMMEDIATE: LiteralString = "BEGIN IMMEDIATE"
COMMIT: LiteralString = "COMMIT"
ROLLBACK: LiteralString = "ROLLBACK"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """One migration file."""

    version: int
    """The ``NNNN`` prefix of the file name."""
    name: str
    """The file name."""
    sql: str
    """The file's text."""

    @property
    def checksum(self) -> str:
        """sha256 of the text with normalised line endings (a git checkout may change them)."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file split into complete SQL statements (SQLite's own tokenizer decides)."""
        statements: list[str] = []
        buffer = ""
        for line in self.sql.splitlines(keepends=True):
            buffer += line
            # complete_statement ignores comments and string literals, so a ';' inside
            # them never splits a statement, and CREATE TRIGGER ... END; stays whole.
            if sqlite3.complete_statement(buffer):
                statements.append(buffer.strip())
                buffer = ""
        leftover = "\n".join(
            ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")
        )
        if leftover:
            raise StoreError(f"migration {self.name} ends with an incomplete statement")
        return statements


def load_migrations(dialect: Dialect = "sqlite") -> list[Migration]:
    """The shipped migrations of a dialect, by version."""
    folder = resources.files("checkpoints") / "migrations" / dialect
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise StoreError(f"two migrations share version {version:04d}: {entry.name}")
        found[version] = Migration(version=version, name=entry.name, sql=entry.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


def migrate(conn: sqlite3.Connection, *, dialect: Dialect = "sqlite") -> list[int]:
    """Apply the pending migrations; return the versions applied now (empty: a no-op).

    ``conn`` must be in autocommit mode (``isolation_level=None``): each migration runs in
    its own explicit ``BEGIN IMMEDIATE`` transaction. It is a plain ``sqlite3`` connection:
    migrations run once, at start-up, before the store takes any write.

    Raises:
        StoreError: a migration failed (it is rolled back whole), an applied file was edited,
            or the database holds a version this code does not know.
    """
    if conn.isolation_level is not None:
        raise ValueError("migrate() needs a connection opened with isolation_level=None")
    migrations = load_migrations(dialect)
    known = {m.version: m for m in migrations}
    current = "the migrations table"
    try:
        conn.execute(CREATE_MIGRATIONS_TABLE)
        applied = {int(r[0]): str(r[2]) for r in conn.execute(SELECT_APPLIED).fetchall()}
        _check_applied(applied, known)
        done: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            current = migration.name
            if _apply(conn, migration):
                done.append(migration.version)
        return done
    except sqlite3.Error as exc:
        raise StoreError(f"database migration failed at {current}: {exc}") from exc


def _check_applied(applied: dict[int, str], known: dict[int, Migration]) -> None:
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            newest = max(known, default=0)
            raise StoreError(
                f"the database has schema version {version:04d} but this graph-runtime knows "
                f"only up to {newest:04d}; upgrade graph-runtime"
            )
        if migration.checksum != checksum:
            raise StoreError(
                f"migration {migration.name} was edited after it was applied to this "
                "database; shipped migrations are append-only: add a new NNNN_*.sql file"
            )


def _apply(conn: sqlite3.Connection, migration: Migration) -> bool:
    # The statements are split before BEGIN so a malformed file fails before any write.
    statements = migration.statements()
    # BEGIN IMMEDIATE takes the write lock first, so another process migrating the same file
    # waits (busy_timeout) and then sees the version below instead of applying it twice.
    conn.execute(BEGIN_IMMEDIATE)
    try:
        if conn.execute(SELECT_ONE_APPLIED, (migration.version,)).fetchall():
            conn.execute(ROLLBACK)
            return False
        for statement in statements:
            conn.execute(statement)
        row = (migration.version, migration.name, migration.checksum, utcnow().isoformat())
        conn.execute(INSERT_APPLIED, row)
        conn.execute(COMMIT)
    except BaseException:
        # DDL is transactional in SQLite: a failed migration leaves no half-made schema.
        if conn.in_transaction:
            conn.execute(ROLLBACK)
        raise
    return True
