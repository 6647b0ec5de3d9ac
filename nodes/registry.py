"""Node type registry: node type name → executor class.

The built-in types are registered by ``default_registry``; users add their own with
``default_registry.register(MyNode)`` (or a private ``NodeRegistry`` passed to the runtime).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from graph_runtime.errors import ConflictError
from nodes.base import NodeExecutor

__all__ = ["BUILTIN_TYPES", "NodeRegistry", "default_registry"]

#: Built-in node types and the module that implements each.
BUILTIN_TYPES: dict[str, str] = {
    "condition": "nodes.condition",
    "http": "nodes.http",
    "human": "nodes.human",
    "input": "nodes.input",
    "llm": "nodes.llm",
    "loop": "nodes.loop",
    "map": "nodes.map",
    "output": "nodes.output",
    "subgraph": "nodes.subgraph",
    "template": "nodes.template",
    "tool": "nodes.tool",
    "transform": "nodes.transform",
    "wait": "nodes.wait",
}


class NodeRegistry:
    """A mapping of node type names to executor classes."""

    def __init__(self, *, builtins: bool = True) -> None:
        self._types: dict[str, type[NodeExecutor]] = {}
        self._builtins_loaded = not builtins

    def _load_builtins(self) -> None:
        # Imported on first use: node modules import the expression DSL, which the
        # registry module itself must not need at import time.
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for type_name, module_name in BUILTIN_TYPES.items():
            module = importlib.import_module(module_name)
            self._types.setdefault(type_name, module.Node)

    def register(
        self, executor: type[NodeExecutor], *, replace: bool = False
    ) -> type[NodeExecutor]:
        """Add a node type (usable as a class decorator).

        Raises:
            ConflictError: the type name is taken and ``replace`` is false.
        """
        self._load_builtins()
        name = executor.type_name
        if not replace and name in self._types and self._types[name] is not executor:
            raise ConflictError(f"node type {name!r} is already registered")
        self._types[name] = executor
        return executor

    def get(self, type_name: str) -> type[NodeExecutor]:
        """The executor class of a type (``KeyError`` if unknown)."""
        self._load_builtins()
        return self._types[type_name]

    def types(self) -> list[str]:
        """Registered type names, sorted."""
        self._load_builtins()
        return sorted(self._types)

    def __contains__(self, type_name: object) -> bool:
        self._load_builtins()
        return type_name in self._types

    def __iter__(self) -> Iterator[str]:
        return iter(self.types())

    def copy(self) -> NodeRegistry:
        """An independent registry with the same types."""
        clone = NodeRegistry(builtins=False)
        self._load_builtins()
        clone._types = dict(self._types)
        return clone


#: The process-wide registry the compiler uses by default.
default_registry = NodeRegistry()
