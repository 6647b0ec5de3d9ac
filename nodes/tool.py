"""``tool``: call a registry tool with CEL ``args``, or run the last AI message's tool calls.

``{"tool": "orders.list_recent", "args": {"limit": "5"}, "output": "orders"}`` calls one tool; a
failure is the node's own E003 (retried per ``retry``). ``{"calls": "last_message"}`` executes
the pending ``tool_calls`` of the last AI message in ``messages`` (like langgraph-prebuilt's
``ToolNode``) and appends one ToolMessage per call; each call is its own step record
``<node>.<tool>``, a failing one recorded with E003 and answered with an error ToolMessage so the
model can react (or, with ``fail_on_error``, the node fails).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from langchain_core.messages import AIMessage, ToolMessage, convert_to_messages
from pydantic import Field, model_validator

from graph_runtime.errors import NodeExecutionError
from graph_runtime.expressions import to_view
from nodes._config import NodeConfig
from nodes._tools import run_tool, run_tool_call, tool_registry
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput, pointer
from nodes.llm import MESSAGES_KEY

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of a ``tool`` node."""

    tool: str | None = Field(default=None, description="Tool registry name.")
    args: dict[str, str] = Field(default_factory=dict, description="{argument: CEL}.")
    calls: Literal["last_message"] | None = Field(
        default=None, description="Run the tool calls of the last AI message in `messages`."
    )
    tools: list[str] | None = Field(
        default=None, description="With `calls`: the tools the model may call (default: all)."
    )
    fail_on_error: bool = Field(
        default=False, description="With `calls`: fail the node when a tool call fails."
    )
    output: str | None = Field(default=None, description="State key for the tool's result.")

    @model_validator(mode="after")
    def _one_mode(self) -> Config:
        if (self.tool is None) == (self.calls is None):
            raise ValueError("a tool node needs exactly one of 'tool' and 'calls'")
        if self.calls is not None and self.args:
            raise ValueError("'args' goes with 'tool'; 'calls' takes the model's arguments")
        if self.tool is not None and (self.tools is not None or self.fail_on_error):
            raise ValueError("'tools' and 'fail_on_error' go with 'calls'")
        return self


class Node(BaseNode[Config]):
    """Run a tool (or the model's tool calls)."""

    type_name: ClassVar[str] = "tool"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._args = [(k, self.expr(v)) for k, v in config.args.items()]

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Call the tool(s)."""
        if self.config.tool is not None:
            return await self._call_one(ctx, self.config.tool)
        return await self._run_calls(ctx)

    async def _call_one(self, ctx: NodeContext, name: str) -> NodeOutput:
        registry = tool_registry(ctx.services)
        if name not in registry:
            raise NodeExecutionError(f"tool {name!r} is not registered")
        args = {k: ctx.evaluate(e, f"args.{k}") for k, e in self._args}
        value = to_view(await run_tool(name, registry.get(name), args))
        update = {self.config.output: value} if self.config.output else {}
        return NodeOutput(update=update, result={"tool": name, "output": value})

    async def _run_calls(self, ctx: NodeContext) -> NodeOutput:
        history = list(ctx.state.get(MESSAGES_KEY) or [])
        last = history[-1] if history else None
        if isinstance(last, dict):  # a `replace` key fed with JSON holds message dicts
            last = convert_to_messages([last])[0]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return NodeOutput(result={"calls": 0})
        registry = tool_registry(ctx.services)
        try:
            tools = registry.select(self.config.tools)
        except KeyError as exc:
            raise NodeExecutionError(f"tool {exc.args[0]!r} is not registered") from None
        answers: list[ToolMessage] = []
        for k, call in enumerate(last.tool_calls):
            answer = await run_tool_call(ctx, tools, call, key=str(k))
            if self.config.fail_on_error and answer.status == "error":
                raise NodeExecutionError(f"tool call {call['name']!r}: {answer.content}")
            answers.append(answer)
        # The whole list: the `messages` reducer dedupes by id, a `replace` key keeps history.
        update: dict[str, Any] = {MESSAGES_KEY: [*history, *answers]}
        outputs = [to_view(a.content) for a in answers]
        if self.config.output:
            update[self.config.output] = outputs
        failed = sum(a.status == "error" for a in answers)
        return NodeOutput(update=update, result={"calls": len(answers), "failed": failed})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [ExpressionRef(path=pointer("args", k), source=v) for k, v in config.args.items()]

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        keys = {config.output} if config.output else set()
        return keys | ({MESSAGES_KEY} if config.calls else set())
