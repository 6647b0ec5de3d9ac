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

ROUTERS: tuple[APIRouter, ...] = (
    executions.router,
    tasks.router,
    workflows.router,
    ops.router,
    agent_protocol.router,
    agent_protocol_runs.router,
)
