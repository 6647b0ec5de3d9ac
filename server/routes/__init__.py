"""The HTTP routers; ``create_app`` includes every one of :data:`ROUTERS`."""

from __future__ import annotations

from fastapi import APIRouter

from server.routes import (
    agent_protocol,
    agent_protocol_runs,
    executions,
    ops,
    tasks,
    workflows,
)

__all__ = ["ROUTERS"]

#: In matching order: a request is matched against the routers one after the other, so the
#: SDK's hot paths (a run's create/wait/stream, then thread creation) come first. No path of
#: one router matches a route of another, so the order changes nothing else.
ROUTERS: tuple[APIRouter, ...] = (
    agent_protocol_runs.router,
    agent_protocol.router,
    executions.router,
    tasks.router,
    workflows.router,
    ops.router,
)
