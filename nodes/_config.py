"""Shared pieces of node config models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["NodeConfig"]


class NodeConfig(BaseModel):
    """Base of every built-in node config: unknown fields are rejected, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
