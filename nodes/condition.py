"""``condition``: picks the first branch whose ``when`` holds, else ``default``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["Branch", "Config", "Node"]


class Branch(NodeConfig):
    """A named branch taken when ``when`` is true."""

    name: str = Field(min_length=1, description="Branch name, used by edges' `branch`.")
    when: str = Field(min_length=1, description="CEL condition.")


class Config(NodeConfig):
    """Config of a ``condition`` node."""

    branches: list[Branch] = Field(min_length=1, description="Tried in order; first match wins.")
    default: str = Field(default="default", min_length=1, description="Branch when none match.")

    @model_validator(mode="after")
    def _unique(self) -> Config:
        names = [b.name for b in self.branches]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate branch names: {', '.join(dupes)}")
        return self


class Node(BaseNode[Config]):
    """Route on CEL conditions; the chosen branch is the step's result."""

    type_name: ClassVar[str] = "condition"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._tests = [(b.name, self.expr(b.when)) for b in config.branches]

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Evaluate the branches in order."""
        for i, (name, test) in enumerate(self._tests):
            if ctx.evaluate(test, f"branches[{i}].when") is True:
                return NodeOutput(branch=name, result={"branch": name})
        return NodeOutput(branch=self.config.default, result={"branch": self.config.default})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [
            ExpressionRef(path=f"/branches/{i}/when", source=b.when)
            for i, b in enumerate(config.branches)
        ]

    @classmethod
    def branches(cls, config: Config) -> list[str]:
        names = [b.name for b in config.branches]
        return names if config.default in names else [*names, config.default]
