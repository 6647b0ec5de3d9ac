"""The run state machine's one check (DESIGN.md §3). The table itself is ``models.TRANSITIONS``."""

from __future__ import annotations

from graph_runtime.errors import InvalidTransition
from graph_runtime.models import TERMINAL_STATUSES, TRANSITIONS, TaskStatus

__all__ = ["AGENT_PROTOCOL_STATUS", "check_transition"]

#: Our status → the Agent Protocol's run status.
AGENT_PROTOCOL_STATUS: dict[TaskStatus, str] = {
    TaskStatus.PENDING: "pending",
    TaskStatus.RUNNING: "running",
    TaskStatus.STOPPING: "running",
    TaskStatus.PAUSED: "interrupted",
    TaskStatus.COMPLETED: "success",
    TaskStatus.FAILED: "error",
    TaskStatus.CRASHED: "error",
    TaskStatus.TIMED_OUT: "timeout",
    TaskStatus.STOPPED: "interrupted",
    TaskStatus.CANCELLED: "interrupted",
}


def check_transition(current: TaskStatus, target: TaskStatus) -> TaskStatus:
    """Return ``target`` if ``current → target`` is legal, else raise ``InvalidTransition``."""
    if target in TRANSITIONS[current]:
        return target
    if current in TERMINAL_STATUSES:
        reason = f"the run is already {current.value}"
    else:
        reason = f"cannot go from {current.value!r} to {target.value!r}"
    raise InvalidTransition(current, target, reason)
