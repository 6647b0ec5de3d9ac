"""The scripted chat model behind the ``fake`` provider: for tests, demos and notebooks.

``{"provider": "fake", "responses": [...]}``: each response is text, an AIMessage-like object
(``{"content", "tool_calls": [{"name", "args", "id"}]}``), or any other JSON value, which is
answered as JSON text (what ``structured_output`` parses). Tokens stream like a real model's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda

from graph_runtime.errors import NodeExecutionError

__all__ = ["ScriptedChatModel"]

_AI_KEYS = frozenset({"content", "tool_calls", "id", "type", "additional_kwargs", "usage_metadata"})


def _scripted(item: Any, index: int) -> AIMessage:
    """One scripted response: text, an AIMessage-like dict, or JSON (for structured output)."""
    if isinstance(item, AIMessage):
        return item
    if isinstance(item, str):
        return AIMessage(content=item)
    keys = set(item) if isinstance(item, Mapping) else set()
    if isinstance(item, Mapping) and keys <= _AI_KEYS and {"content", "tool_calls"} & keys:
        calls = [
            {
                "name": call["name"],
                "args": dict(call.get("args") or {}),
                "id": call.get("id") or f"call_{index}_{k}",
                "type": "tool_call",
            }
            for k, call in enumerate(item.get("tool_calls") or [])
        ]
        extra = {k: v for k, v in item.items() if k not in ("content", "tool_calls", "type")}
        return AIMessage(content=item.get("content") or "", tool_calls=calls, **extra)
    return AIMessage(content=json.dumps(item))


class ScriptedChatModel(GenericFakeChatModel):
    """``GenericFakeChatModel`` that also scripts tool calls and JSON output and streams both.

    Tools and ``tool_choice`` are accepted and ignored: the script decides what the model says.
    """

    @classmethod
    def from_responses(cls, responses: Sequence[Any]) -> ScriptedChatModel:
        """A model that answers with ``responses`` in order, then fails."""
        return cls(messages=iter([_scripted(r, i) for i, r in enumerate(responses)]))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            message = next(self.messages)
        except StopIteration:
            raise NodeExecutionError("the fake model has no scripted responses left") from None
        message = AIMessage(content=message) if isinstance(message, str) else message
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._generate(messages).generations[0].message
        assert isinstance(message, AIMessage)
        content = message.content
        content = content if isinstance(content, str) else json.dumps(content)
        for token in (t for t in re.split(r"(\s)", content) if t):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        # GenericFakeChatModel drops tool calls when streaming; send them as one chunk.
        calls = [
            {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
            for i, c in enumerate(message.tool_calls)
        ]
        last = AIMessageChunk(content="", id=message.id, tool_call_chunks=calls)  # type: ignore[arg-type]
        last.chunk_position = "last"
        yield ChatGenerationChunk(message=last)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:  # type: ignore[override]
        """Accept tools; the script decides whether the model calls them."""
        return self.bind(**kwargs)  # type: ignore[return-value]

    def with_structured_output(  # type: ignore[override]
        self, schema: Any, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[Any, Any]:
        """Parse the scripted text as JSON (the node validates it against ``schema``)."""

        def parse(message: AIMessage) -> Any:
            parsed, error = None, None
            try:
                parsed = json.loads(message.text)
            except ValueError as exc:
                error = exc
            if include_raw:
                return {"raw": message, "parsed": parsed, "parsing_error": error}
            if error is not None:
                raise error
            return parsed

        return self | RunnableLambda(parse)
