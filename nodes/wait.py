"""``wait``: sleeps, without holding a thread; a stop cuts it at once."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import Field

from graph_runtime.errors import ExpressionError
from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["MAX_WAIT_SECONDS", "Config", "Node"]

#: Upper bound on one wait, whatever the document asks.
MAX_WAIT_SECONDS = 86_400.0


class Config(NodeConfig):
    """Config of a ``wait`` node."""

    seconds: float | str = Field(description="Seconds to sleep: a number or a CEL expression.")


class Node(BaseNode[Config]):
    """Sleep ``seconds`` (capped)."""

    type_name: ClassVar[str] = "wait"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._expr = self.expr(config.seconds) if isinstance(config.seconds, str) else None

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Sleep; cancellation (stop) interrupts the sleep immediately."""
        seconds: Any = self.config.seconds
        if self._expr is not None:
            seconds = ctx.evaluate(self._expr, "seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ExpressionError(
                f"seconds must be a non-negative number, got {seconds!r}",
                node_id=self.node_id,
                field="seconds",
            )
        seconds = min(float(seconds), MAX_WAIT_SECONDS)
        await asyncio.sleep(seconds)
        return NodeOutput(result={"waited": seconds})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        if isinstance(config.seconds, str):
            return [ExpressionRef(path="/seconds", source=config.seconds)]
        return []
