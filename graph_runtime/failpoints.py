"""Fail points: test-only hooks that crash or raise at named places of the durable path.

Enabled only by the ``GRAPH_RUNTIME_FAILPOINTS`` environment variable, read once at import::

    GRAPH_RUNTIME_FAILPOINTS="after_checkpoint=crash,after_step_record=raise:3"

Each entry is ``point=action`` or ``point=action:N`` (fire on the Nth hit of that point, once;
without ``N`` on the first). ``crash`` ends the process at once, as ``kill -9`` would (no
``finally``, no atexit, no flush); ``raise`` raises ``FailPointError``. Points:

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

__all__ = ["ENABLED", "POINTS", "FailPointError", "after", "hit", "parse"]

POINTS = frozenset(
    {"after_checkpoint", "after_step_record", "after_status_write", "before_publish"}
)
_ACTIONS = frozenset({"crash", "raise"})


class FailPointError(RuntimeError):
    """Raised by a ``raise`` fail point."""


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """``"a=crash,b=raise:3"`` → ``{"a": ("crash", 1), "b": ("raise", 3)}``.

    Raises:
        ValueError: an unknown point or action, or a count below 1 (a typo must not leave
            a fault suite silently testing nothing).
    """
    plan: dict[str, tuple[str, int]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, sep, rest = part.partition("=")
        action, _, count = rest.partition(":")
        nth = int(count) if count else 1
        if not sep or point not in POINTS or action not in _ACTIONS or nth < 1:
            raise ValueError(f"bad fail point {part!r} in GRAPH_RUNTIME_FAILPOINTS")
        plan[point] = (action, nth)
    return plan


_PLAN = parse(os.environ.get("GRAPH_RUNTIME_FAILPOINTS", ""))
ENABLED = bool(_PLAN)
_hits: dict[str, int] = {}
_lock = threading.Lock()  # the store's writer thread hits points too


def hit(point: str) -> None:
    """Count a pass through ``point``; crash or raise if its plan says this is the hit."""
    if not ENABLED:
        return
    planned = _PLAN.get(point)
    if planned is None:
        return
    action, nth = planned
    with _lock:
        _hits[point] = count = _hits.get(point, 0) + 1
    if count != nth:
        return
    if action == "crash":
        # SIGKILL, not os._exit: nothing of this process runs after it, like `kill -9`.
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailPointError(f"fail point {point} (hit {count})")


def after(on_done: Callable[[BaseException | None], None], point: str) -> Callable[..., None]:
    """Wrap a write's ``on_done`` callback so ``point`` is hit once the write succeeded."""

    def done(error: BaseException | None = None) -> None:
        if error is None:
            hit(point)
        on_done(error)

    return done
