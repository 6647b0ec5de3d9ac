"""Small builders for the node tests' workflow documents and runtimes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from graph_runtime.config import RuntimeConfig
from graph_runtime.runtime import Runtime

SCHEMA = "graph-runtime/workflow/v1"


def doc(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A workflow document (id ``wf`` unless given)."""
    return {"schema": SCHEMA, "id": extra.pop("id", "wf"), "nodes": nodes, "edges": edges, **extra}


def chain(*ids: str) -> list[dict[str, Any]]:
    """Plain edges a → b → c …"""
    return [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]


def runtime(tmp_path: Path, name: str = "x.db", **services: Any) -> Runtime:
    """A runtime on a SQLite file in ``tmp_path`` with these services."""
    return Runtime(
        tmp_path / name, services=services, config=RuntimeConfig(shutdown_grace_seconds=0.2)
    )
