"""The tool registry and tool-call execution shared by ``llm`` (tool loop) and ``tool`` nodes.

Tools are langchain-core ``BaseTool``s (``@tool`` functions included), registered from Python or
by installed packages through the ``graph_runtime.tools`` entry point group. Registry names may
contain dots (``orders.list_recent``); providers only accept ``[A-Za-z0-9_-]`` in function
names, so models see :func:`api_name` of each and their calls are mapped back.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from langchain_core.messages import ToolCall, ToolMessage
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.errors import GraphBubbleUp

from graph_runtime.errors import (
    ConflictError,
    ExpressionError,
    GraphRuntimeError,
    NodeExecutionError,
)
from graph_runtime.expressions import to_view
from graph_runtime.models import ErrorCode, utcnow
from nodes.base import NodeContext, SubStep

__all__ = [
    "TOOL_ENTRY_POINT_GROUP",
    "ToolRegistry",
    "api_name",
    "run_tool",
    "run_tool_call",
    "tool_registry",
]

logger = logging.getLogger(__name__)

TOOL_ENTRY_POINT_GROUP = "graph_runtime.tools"
#: What a tool call result may show in a step record (the ToolMessage has all of it).
_MAX_RESULT_CHARS = 10_000

ToolLike = BaseTool | Callable[..., Any]


def api_name(name: str) -> str:
    """The function name a provider accepts for registry name ``name``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]


class ToolRegistry:
    """Tools by name. ``ToolRegistry([search, lookup])`` or ``registry.register(fn, name=...)``."""

    def __init__(self, tools: Iterable[ToolLike] | Mapping[str, ToolLike] = ()) -> None:
        self._tools: dict[str, BaseTool] = {}
        if isinstance(tools, Mapping):
            for name, item in tools.items():
                self.register(item, name=name)
        else:
            for item in tools:
                self.register(item)

    @classmethod
    def coerce(cls, value: Any) -> ToolRegistry:
        """``value`` as a registry: a registry, a list or mapping of tools, or None."""
        if isinstance(value, ToolRegistry):
            return value
        return cls(value or ())

    @classmethod
    def from_entry_points(cls, group: str = TOOL_ENTRY_POINT_GROUP) -> ToolRegistry:
        """A registry of the tools installed packages publish under ``group``."""
        registry = cls()
        registry.load_entry_points(group)
        return registry

    def register(
        self, item: ToolLike, *, name: str | None = None, replace: bool = False
    ) -> BaseTool:
        """Add a tool (a plain function is wrapped with ``@tool``).

        Raises:
            ConflictError: the name is taken and ``replace`` is false.
        """
        as_tool = item if isinstance(item, BaseTool) else tool(item)
        key = name or as_tool.name
        if not replace and key in self._tools and self._tools[key] is not as_tool:
            raise ConflictError(f"tool {key!r} is already registered")
        self._tools[key] = as_tool
        return as_tool

    def load_entry_points(self, group: str = TOOL_ENTRY_POINT_GROUP) -> list[str]:
        """Register what each entry point of ``group`` loads: a tool, a function, or a list.

        Entry point names prefix list items (``orders`` → ``orders.list_recent``). A broken
        entry point is logged and skipped, so one bad package does not stop the server.
        """
        added: list[str] = []
        for ep in importlib.metadata.entry_points(group=group):
            try:
                loaded = ep.load()
                items = loaded if isinstance(loaded, list | tuple) else [loaded]
                for item in items:
                    single = len(items) == 1 and not isinstance(loaded, list | tuple)
                    as_tool = item if isinstance(item, BaseTool) else tool(item)
                    name = ep.name if single else f"{ep.name}.{as_tool.name}"
                    self.register(as_tool, name=name)
                    added.append(name)
            except Exception:
                logger.exception(
                    "tool entry point %s failed", ep.name, extra={"action": "load_tools"}
                )
        return added

    def get(self, name: str) -> BaseTool:
        """The tool registered as ``name`` (``KeyError`` if none)."""
        return self._tools[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def select(self, names: Iterable[str] | None = None) -> dict[str, tuple[str, BaseTool]]:
        """``{api name or registry name: (registry name, tool)}`` for ``names`` (default: all).

        Raises:
            KeyError: a name is not registered.
        """
        chosen: dict[str, tuple[str, BaseTool]] = {}
        for name in self.names() if names is None else names:
            entry = (name, self._tools[name])
            chosen[name] = entry
            chosen.setdefault(api_name(name), entry)
        return chosen

    def specs(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """OpenAI-format tool specs for ``bind_tools``, under their API names."""
        specs = []
        for name in names:
            spec = convert_to_openai_tool(self._tools[name])
            spec["function"]["name"] = api_name(name)
            specs.append(spec)
        return specs


def tool_registry(services: Mapping[str, Any]) -> ToolRegistry:
    """The registry in ``services["tools"]`` (an empty one when there is none)."""
    return ToolRegistry.coerce(services.get("tools"))


def _content(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(to_view(result))
    except (TypeError, ValueError, ExpressionError):
        return str(result)


def _shown(result: Any) -> Any:
    try:
        view = to_view(result)
    except ExpressionError:
        return str(result)[:_MAX_RESULT_CHARS]
    if len(json.dumps(view, default=str)) > _MAX_RESULT_CHARS:
        return _content(result)[:_MAX_RESULT_CHARS] + "…"
    return view


async def run_tool(name: str, tool_: BaseTool, args: Mapping[str, Any]) -> Any:
    """Invoke a tool; a failure is E003 (``NodeExecutionError``), interrupts pass through."""
    try:
        return await tool_.ainvoke(dict(args))
    except (GraphBubbleUp, GraphRuntimeError):
        raise  # interrupt() inside a tool is control flow; our own errors keep their code
    except Exception as exc:
        raise _tool_error(name, exc) from exc


def _tool_error(name: str, exc: Exception) -> GraphRuntimeError:
    return NodeExecutionError(f"tool {name!r} failed: {type(exc).__name__}: {exc}")


async def run_tool_call(
    ctx: NodeContext, tools: Mapping[str, tuple[str, BaseTool]], call: ToolCall, key: str
) -> ToolMessage:
    """Execute one tool call of a model, record it as step ``<node>.<tool>``, answer it.

    A failing or unknown tool is recorded with E003 and answered with an error ToolMessage,
    so the model (or the next node) sees what went wrong.
    """
    started = utcnow()
    call_id = call.get("id") or key
    entry = tools.get(call["name"])
    name = entry[0] if entry else call["name"]
    try:
        if entry is None:
            raise _tool_error(name, KeyError(f"no tool named {call['name']!r} is available"))
        result = await run_tool(name, entry[1], call.get("args") or {})
    except GraphBubbleUp:
        raise
    except GraphRuntimeError as exc:
        ctx.record_step(
            SubStep(
                name=name,
                key=key,
                started_at=started,
                result={"args": _shown(call.get("args"))},
                error_code=ErrorCode.EXECUTION_ERROR,
                error_message=exc.message,
            )
        )
        return ToolMessage(
            content=f"Error: {exc.message}", tool_call_id=call_id, name=call["name"], status="error"
        )
    ctx.record_step(
        SubStep(
            name=name,
            key=key,
            started_at=started,
            result={"args": _shown(call.get("args")), "output": _shown(result)},
        )
    )
    return ToolMessage(content=_content(result), tool_call_id=call_id, name=call["name"])
