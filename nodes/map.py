"""``map``: runs ``node`` once per item of a list, in parallel (LangGraph ``Send``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from graph_runtime.errors import ExpressionError
from nodes._config import NodeConfig
from nodes.base import MAP_KEY, BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of a ``map`` node."""

    items: str = Field(min_length=1, description="CEL expression giving the list.")
    as_: str = Field(
        default="item",
        alias="as",
        pattern=r"^[a-z_][a-z0-9_]{0,31}$",
        description="Variable name of the item in the target's expressions.",
    )
    node: str = Field(min_length=1, description="The node id run once per item.")
    max_items: int = Field(default=1000, ge=1, le=10_000, description="More items is E007.")


class Node(BaseNode[Config]):
    """Evaluate the items; the compiler fans them out to ``node`` with ``Send``."""

    type_name: ClassVar[str] = "map"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset({MAP_KEY})

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._items = self.expr(config.items)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Evaluate the list and keep it for the fan-out."""
        items = ctx.evaluate(self._items, "items")
        if not isinstance(items, list):
            raise ExpressionError(
                f"items must be a list, got {type(items).__name__}",
                expression=self.config.items,
                node_id=self.node_id,
                field="items",
            )
        if len(items) > self.config.max_items:
            raise ExpressionError(
                f"{len(items)} items is over max_items={self.config.max_items}",
                expression=self.config.items,
                node_id=self.node_id,
                field="items",
            )
        return NodeOutput(update={MAP_KEY: {self.node_id: items}}, result={"items": len(items)})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [ExpressionRef(path="/items", source=config.items)]
