"""The Python SDK: ``Workflow`` authors workflow documents; ``Client``/``AsyncClient`` talk HTTP.

Names are loaded on first use (PEP 562) so that importing the SDK for one part (say, an
HTTP client) does not import the compiler and LangGraph for another.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graph_runtime.sdk.builder import Workflow
    from graph_runtime.sdk.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "Workflow"]

_LAZY = {
    "AsyncClient": "graph_runtime.sdk.client",
    "Client": "graph_runtime.sdk.client",
    "Workflow": "graph_runtime.sdk.builder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
