"""``input``: validates the run's input against a JSON Schema and maps it into state."""

from __future__ import annotations

from typing import Any, ClassVar

import jsonschema
from pydantic import Field

from graph_runtime.errors import InputValidationError, Problem
from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput, pointer

__all__ = ["Config", "Node"]


class Config(NodeConfig):
    """Config of an ``input`` node."""

    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON Schema the input must match (E001)."
    )
    map: dict[str, str] | None = Field(
        default=None, description="{state_key: CEL over `input`}; default: same-named keys."
    )


def _pointer(path: Any) -> str:
    return "".join(f"/{p}" for p in path)


class Node(BaseNode[Config]):
    """Validate ``input_data`` and copy it into state."""

    type_name: ClassVar[str] = "input"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._validator = None
        if config.schema_ is not None:
            cls = jsonschema.validators.validator_for(config.schema_)
            self._validator = cls(config.schema_, format_checker=cls.FORMAT_CHECKER)
        self._map = {k: self.expr(v) for k, v in (config.map or {}).items()}

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Check the input and write it to state."""
        data = dict(ctx.input)
        if self._validator is not None:
            errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
            if errors:
                problems = [
                    Problem(path=_pointer(e.absolute_path), message=e.message) for e in errors
                ]
                detail = "; ".join(str(p) for p in problems[:5])
                raise InputValidationError(
                    f"input does not match the schema: {detail}", problems=problems
                )
        if self._map:
            update = {key: ctx.evaluate(expr, f"map.{key}") for key, expr in self._map.items()}
        else:
            keys = self.declared_keys(self.config)
            update = {k: v for k, v in data.items() if keys is None or k in keys}
            update = {k: v for k, v in update.items() if not k.startswith("__")}
        return NodeOutput(update=update)

    @staticmethod
    def declared_keys(config: Config) -> set[str] | None:
        """The input properties the schema names (None: take every key)."""
        if config.schema_ is None:
            return None
        props = config.schema_.get("properties")
        return set(props) if isinstance(props, dict) else None

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [
            ExpressionRef(path=pointer("map", k), source=v) for k, v in (config.map or {}).items()
        ]

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        if config.map:
            return set(config.map)
        return cls.declared_keys(config) or set()
