"""Fail points: test-only hooks that crash or raise at named places of the durable path.

Enabled only by the ``GRAPH_RUNTIME_FAILPOINTS`` environment variable, read once at import::

    GRAPH_RUNTIME_FAILPOINTS="after_checkpoint=crash,after_step_record=raise:3"

Each entry is ``point=action``, ``point=action:N`` (fire on the Nth hit of that point, once;
without ``N`` on the first) or ``point=action:N:SECONDS``. ``crash`` ends the process at once,
as ``kill -9`` would (no ``finally``, no atexit, no flush); ``raise`` raises
``FailPointError``. Two storage faults make the database refuse writes for ``SECONDS`` (for
good without): ``disk_full`` (``PRAGMA max_page_count`` at the current size: SQLite's "database
or disk is full") and ``read_only`` (``PRAGMA query_only``: "attempt to write a readonly
database"), on the connection of every database registered with :func:`on_storage`. Points:

* ``open``: a database was opened (before anything is written to it).
* ``after_checkpoint``: a checkpoint write committed.
* ``after_step_record``: a write holding step records committed.
* ``after_status_write``: a status change committed.
* ``before_publish``: an event is about to reach the live subscribers.

Unset, ``hit`` is a check of one module constant: the hooks cost nothing in production.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

__all__ = [
    "ENABLED",
    "POINTS",
    "FailPointError",
    "StorageFault",
    "after",
    "hit",
    "on_storage",
    "parse",
]

POINTS = frozenset(
    {"open", "after_checkpoint", "after_step_record", "after_status_write", "before_publish"}
)
_STORAGE_ACTIONS = frozenset({"disk_full", "read_only"})
_ACTIONS = frozenset({"crash", "raise"}) | _STORAGE_ACTIONS

StorageFault = Callable[[str, bool], None]
"""``apply(kind, on)``: switch storage fault ``kind`` on or off on one database."""


class FailPointError(RuntimeError):
    """Raised by a ``raise`` fail point."""


def parse(spec: str) -> dict[str, tuple[str, int, float | None]]:
    """``"a=crash,b=raise:3,c=disk_full:2:1.5"`` → ``{"a": ("crash", 1, None), ...}``.

    Raises:
        ValueError: an unknown point or action, a count below 1 or a bad duration (a typo
            must not leave a fault suite silently testing nothing).
    """
    plan: dict[str, tuple[str, int, float | None]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, sep, rest = part.partition("=")
        action, _, tail = rest.partition(":")
        count, _, duration = tail.partition(":")
        try:
            nth = int(count) if count else 1
            seconds = float(duration) if duration else None
        except ValueError:
            nth, seconds = 0, None
        if (
            not sep
            or point not in POINTS
            or action not in _ACTIONS
            or nth < 1
            or (seconds is not None and (seconds <= 0 or action not in _STORAGE_ACTIONS))
        ):
            raise ValueError(f"bad fail point {part!r} in GRAPH_RUNTIME_FAILPOINTS")
        plan[point] = (action, nth, seconds)
    return plan


_PLAN = parse(os.environ.get("GRAPH_RUNTIME_FAILPOINTS", ""))
ENABLED = bool(_PLAN)
_hits: dict[str, int] = {}
_lock = threading.Lock()  # the store's writer thread hits points too
_storage: list[StorageFault] = []


def on_storage(apply: StorageFault) -> None:
    """Register a database for the storage faults (only kept while fail points are on)."""
    if ENABLED:
        _storage.append(apply)


def hit(point: str) -> None:
    """Count a pass through ``point``; crash or raise if its plan says this is the hit."""
    if not ENABLED:
        return
    planned = _PLAN.get(point)
    if planned is None:
        return
    action, nth, seconds = planned
    with _lock:
        _hits[point] = count = _hits.get(point, 0) + 1
    if count != nth:
        return
    if action in _STORAGE_ACTIONS:
        _switch(action, on=True)
        if seconds is not None:
            timer = threading.Timer(seconds, _switch, (action,), {"on": False})
            timer.daemon = True
            timer.start()
        return
    if action == "crash":
        # SIGKILL, not os._exit: nothing of this process runs after it, like `kill -9`.
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailPointError(f"fail point {point} (hit {count})")


def _switch(kind: str, *, on: bool) -> None:
    for apply in list(_storage):
        apply(kind, on)


def after(on_done: Callable[[BaseException | None], None], point: str) -> Callable[..., None]:
    """Wrap a write's ``on_done`` callback so ``point`` is hit once the write succeeded."""

    def done(error: BaseException | None = None) -> None:
        if error is None:
            hit(point)
        on_done(error)

    return done
