"""``template``: renders text with ``{{ CEL }}`` holes into a state key."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of a ``template`` node."""

    template: str = Field(max_length=65536, description="Text with {{ CEL }} holes.")
    output: str = Field(min_length=1, description="State key that receives the text.")


class Node(BaseNode[Config]):
    """Render the template."""

    type_name: ClassVar[str] = "template"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._template = self.template(config.template)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Render and write the text."""
        return NodeOutput(update={self.config.output: ctx.render(self._template, "template")})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [ExpressionRef(path="/template", source=config.template, kind="template")]

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        return {config.output}
