"""``loop``: takes ``continue`` while a condition holds, up to ``max_iterations``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from nodes._config import NodeConfig
from nodes.base import LOOPS_KEY, BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of a ``loop`` node."""

    while_: str = Field(alias="while", min_length=1, description="CEL: keep looping while true.")
    max_iterations: int = Field(ge=1, le=100_000, description="Cap; then `exhausted` (or `done`).")


class Node(BaseNode[Config]):
    """Count iterations in ``__loops__[<id>]``; reset the counter on exit."""

    type_name: ClassVar[str] = "loop"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset({LOOPS_KEY})

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._while = self.expr(config.while_)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Decide continue / done / exhausted."""
        loops = ctx.state.get(LOOPS_KEY) or {}
        count = int(loops.get(self.node_id, 0))
        if ctx.evaluate(self._while, "while") is not True:
            branch = "done"
        elif count >= self.config.max_iterations:
            branch = "exhausted"
        else:
            return NodeOutput(
                update={LOOPS_KEY: {self.node_id: count + 1}},
                branch="continue",
                result={"branch": "continue", "iteration": count + 1},
            )
        return NodeOutput(
            update={LOOPS_KEY: {self.node_id: 0}},
            branch=branch,
            result={"branch": branch, "iterations": count},
        )

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [ExpressionRef(path="/while", source=config.while_)]

    @classmethod
    def branches(cls, config: Config) -> list[str]:
        return ["continue", "done", "exhausted"]
