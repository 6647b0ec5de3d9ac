"""``output``: selects the run's result from state."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from nodes._config import NodeConfig
from nodes.base import (
    OUTPUT_KEY,
    BaseNode,
    ExpressionRef,
    NodeContext,
    NodeOutput,
    pointer,
    public_state,
)

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of an ``output`` node."""

    select: dict[str, str] | None = Field(
        default=None, description="{result_key: CEL}; default: the whole public state."
    )


class Node(BaseNode[Config]):
    """Build the result; whichever output node runs last wins."""

    type_name: ClassVar[str] = "output"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset({OUTPUT_KEY})

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._select = [(k, self.expr(v)) for k, v in (config.select or {}).items()]

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Evaluate the selection."""
        if self._select:
            result = {k: ctx.evaluate(e, f"select.{k}") for k, e in self._select}
        else:
            result = ctx.variables["state"]
            result = dict(result) if isinstance(result, dict) else public_state(ctx.state)
        return NodeOutput(update={OUTPUT_KEY: result}, result=result)

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [
            ExpressionRef(path=pointer("select", k), source=v)
            for k, v in (config.select or {}).items()
        ]
