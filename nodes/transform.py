"""``transform``: sets state keys to CEL expression values."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput, pointer

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of a ``transform`` node."""

    set: dict[str, str] = Field(min_length=1, description="{state_key: CEL expression}.")


class Node(BaseNode[Config]):
    """Compute new values; they pass through each key's reducer."""

    type_name: ClassVar[str] = "transform"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._set = [(k, self.expr(v)) for k, v in config.set.items()]

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Evaluate every expression against the same input state."""
        return NodeOutput(update={k: ctx.evaluate(e, f"set.{k}") for k, e in self._set})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [ExpressionRef(path=pointer("set", k), source=v) for k, v in config.set.items()]

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        return set(config.set)
