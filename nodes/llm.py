"""``llm``: one chat-model call (or a bounded model → tools loop) on langchain-core models.

The request is ``system`` + ``messages`` (a CEL expression giving the history) + ``prompt``.
With ``structured_output`` (a JSON Schema) the answer is parsed JSON, validated with
jsonschema (invalid → E003, so a retry asks again). With ``tools`` the model may call registry
tools: without ``tool_loop`` the AIMessage and its ``tool_calls`` are the result (route them to
a ``tool`` node with ``has_tool_calls(state.messages)``); with ``tool_loop {max_steps}`` the node
runs the tools itself, each call recorded as its own step ``<node>.<tool>``.

Tokens stream to ``token`` events through LangGraph's ``messages`` stream mode (the model runs
inside the node, under the node's callbacks); ``stream: false`` tags the call ``nostream``.
Provider failures are E003 and timeouts E002, both retried by the node's ``retry`` policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jsonschema
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
)
from langchain_core.runnables import RunnableConfig
from langgraph.constants import TAG_NOSTREAM
from pydantic import Field, model_validator

from graph_runtime.errors import ExpressionError, GraphRuntimeError, NodeExecutionError
from graph_runtime.expressions import to_view
from nodes._config import NodeConfig
from nodes._models import model_factory, provider_error
from nodes._tools import api_name, run_tool_call, tool_registry
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["MESSAGES_KEY", "Config", "Node", "ToolLoop"]

#: The state key ``append_messages`` writes (and a ``tool`` node with ``calls`` reads).
MESSAGES_KEY = "messages"


class ToolLoop(NodeConfig):
    """Run model → tools → model inside the node."""

    max_steps: int = Field(
        default=5, ge=1, le=50, description="Tool rounds allowed before the model must answer."
    )


class Config(NodeConfig):
    """Config of an ``llm`` node."""

    model: str | dict[str, Any] = Field(
        description="An alias (document `models`, then server) or an inline spec."
    )
    system: str | None = Field(default=None, max_length=65536, description="System template.")
    prompt: str | None = Field(default=None, max_length=65536, description="User template.")
    messages: str | None = Field(default=None, description="CEL giving the history to send.")
    tools: list[str] = Field(default_factory=list, description="Tool registry names.")
    tool_choice: str | None = Field(
        default=None, description="'auto', 'required', 'none' or a tool name."
    )
    tool_loop: ToolLoop | None = Field(default=None, description="Run the tools in the node.")
    structured_output: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the answer."
    )
    stream: bool = Field(default=True, description="Stream tokens to `token` events.")
    output: str | None = Field(default=None, description="State key for the answer.")
    append_messages: bool = Field(
        default=False, description="Also append the prompt and the replies to `messages`."
    )

    @model_validator(mode="after")
    def _coherent(self) -> Config:
        if self.prompt is None and self.messages is None:
            raise ValueError("an llm node needs a 'prompt' or 'messages'")
        if self.structured_output is not None and self.tools:
            raise ValueError("structured_output and tools cannot be combined; use two llm nodes")
        if (self.tool_loop is not None or self.tool_choice is not None) and not self.tools:
            raise ValueError("tool_loop and tool_choice need 'tools'")
        return self


def _schema_for_provider(schema: Mapping[str, Any]) -> dict[str, Any]:
    # Providers name the schema after its title (OpenAI insists on one, in [A-Za-z0-9_-]).
    title = schema.get("title")
    if isinstance(title, str) and title.replace("_", "").replace("-", "").isalnum():
        return dict(schema)
    return {**schema, "title": "output"}


class Node(BaseNode[Config]):
    """Call a chat model."""

    type_name: ClassVar[str] = "llm"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._system = self.template(config.system) if config.system is not None else None
        self._prompt = self.template(config.prompt) if config.prompt is not None else None
        self._history = self.expr(config.messages) if config.messages is not None else None
        self._validator: Any = None
        if config.structured_output is not None:
            cls = jsonschema.validators.validator_for(config.structured_output)
            self._validator = cls(config.structured_output)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Build the request, call the model (and tools), write the answer."""
        factory = model_factory(ctx.services)
        model = factory.create(
            self.config.model, ctx.models, scope=f"{ctx.run.get('id')}:{self.node_id}"
        )
        label = factory.describe(self.config.model, ctx.models)
        request = self._request(ctx)
        new: list[BaseMessage] = [request[-1]] if self._prompt is not None else []
        config: RunnableConfig = {} if self.config.stream else {"tags": [TAG_NOSTREAM]}
        if self.config.structured_output is not None:
            reply, value = await self._structured(model, request, config, label)
            new.append(reply)
        else:
            replies = await self._converse(ctx, model, request, config, label)
            new += replies
            reply = next(m for m in reversed(replies) if isinstance(m, AIMessage))
            value = reply.text
        update: dict[str, Any] = {}
        if self.config.output:
            update[self.config.output] = value
        if self.config.append_messages:
            # The whole list: the `messages` reducer dedupes by id, a `replace` key keeps history.
            update[MESSAGES_KEY] = [*(ctx.state.get(MESSAGES_KEY) or []), *new]
        result: dict[str, Any] = {self.config.output or "output": to_view(value), "model": label}
        if reply.usage_metadata:
            result["usage"] = dict(reply.usage_metadata)
        if reply.tool_calls:
            result["tool_calls"] = [c["name"] for c in reply.tool_calls]
        return NodeOutput(update=update, result=result)

    def _request(self, ctx: NodeContext) -> list[BaseMessage]:
        request: list[BaseMessage] = []
        if self._system is not None:
            request.append(SystemMessage(ctx.render(self._system, "system")))
        if self._history is not None:
            history = ctx.evaluate(self._history, "messages")
            try:
                request += convert_to_messages(history if isinstance(history, list) else [history])
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise ExpressionError(
                    f"messages must be a list of messages: {exc}",
                    expression=self.config.messages or "",
                    node_id=self.node_id,
                    field="messages",
                ) from None
        if self._prompt is not None:
            request.append(HumanMessage(ctx.render(self._prompt, "prompt")))
        return request

    async def _structured(
        self, model: BaseChatModel, request: list[BaseMessage], config: RunnableConfig, label: str
    ) -> tuple[AIMessage, Any]:
        assert self.config.structured_output is not None
        schema = _schema_for_provider(self.config.structured_output)
        try:
            try:
                runnable = model.with_structured_output(
                    schema, method="json_schema", include_raw=True
                )
            except (TypeError, ValueError, NotImplementedError):
                runnable = model.with_structured_output(schema, include_raw=True)
            out: dict[str, Any] = await runnable.ainvoke(request, config)  # type: ignore[assignment]
        except Exception as exc:
            raise provider_error(exc, label) from exc
        raw, parsed = out.get("raw"), out.get("parsed")
        if out.get("parsing_error") is not None or parsed is None:
            raise NodeExecutionError(
                f"model {label} did not answer with JSON: {out.get('parsing_error')}"
            )
        errors = sorted(self._validator.iter_errors(parsed), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path)
            raise NodeExecutionError(
                f"model {label} answered JSON that does not match structured_output"
                f" at /{where}: {errors[0].message}"
            )
        reply = raw if isinstance(raw, AIMessage) else AIMessage(content=str(parsed))
        return reply, parsed

    async def _converse(
        self,
        ctx: NodeContext,
        model: BaseChatModel,
        request: list[BaseMessage],
        config: RunnableConfig,
        label: str,
    ) -> list[BaseMessage]:
        runnable: Any = model
        tools: dict[str, Any] = {}
        if self.config.tools:
            registry = tool_registry(ctx.services)
            try:
                tools = registry.select(self.config.tools)
            except KeyError as exc:
                raise NodeExecutionError(f"tool {exc.args[0]!r} is not registered") from None
            choice = self.config.tool_choice
            if choice in self.config.tools:
                choice = api_name(choice)
            runnable = model.bind_tools(registry.specs(self.config.tools), tool_choice=choice)
        messages, replies = list(request), list[BaseMessage]()
        rounds = 0
        while True:
            reply = await self._call(runnable, messages, config, label)
            messages.append(reply)
            replies.append(reply)
            if not reply.tool_calls or self.config.tool_loop is None:
                return replies
            if rounds >= self.config.tool_loop.max_steps:
                raise NodeExecutionError(
                    f"the model still called tools after tool_loop.max_steps="
                    f"{self.config.tool_loop.max_steps} rounds"
                )
            rounds += 1
            for k, call in enumerate(reply.tool_calls):
                answer = await run_tool_call(ctx, tools, call, key=f"{rounds}.{k}")
                messages.append(answer)
                replies.append(answer)

    async def _call(
        self, runnable: Any, messages: list[BaseMessage], config: RunnableConfig, label: str
    ) -> AIMessage:
        try:
            reply = await runnable.ainvoke(messages, config)
        except GraphRuntimeError:
            raise
        except Exception as exc:
            raise provider_error(exc, label) from exc
        if not isinstance(reply, AIMessage):
            raise NodeExecutionError(f"model {label} returned {type(reply).__name__}")
        return reply

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        refs = []
        if config.system is not None:
            refs.append(ExpressionRef(path="/system", source=config.system, kind="template"))
        if config.prompt is not None:
            refs.append(ExpressionRef(path="/prompt", source=config.prompt, kind="template"))
        if config.messages is not None:
            refs.append(ExpressionRef(path="/messages", source=config.messages))
        return refs

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        keys = {config.output} if config.output else set()
        return keys | ({MESSAGES_KEY} if config.append_messages else set())
