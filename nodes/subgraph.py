"""``subgraph``: run another stored workflow inside this node and map its result back.

``{"workflow": "order-check", "version": 2, "input": {"order": "item"},
"output": {"checks": "[result.verdict]"}}``. The child is compiled and invoked inside the node
with the run's checkpointer, so its steps stream with ``subgraphs=True``, are recorded as
``<this node>/<child node>``, and an ``interrupt()`` in the child pauses the whole run (the
resume continues inside the child). ``"latest"`` is pinned once per run, to the newest version
stored when the run was submitted, and the pinned version is in the step record.

Both come from ``services["workflows"]``, a :class:`WorkflowRunner`; the ``Runtime`` provides
one backed by its store. Reference cycles are refused when a workflow is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import Field

from graph_runtime.errors import NodeExecutionError
from graph_runtime.expressions import Expression, compile_expression, to_view
from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput, pointer

__all__ = ["Config", "Node", "WorkflowRunner"]

_RESULT = frozenset({"result"})


@runtime_checkable
class WorkflowRunner(Protocol):
    """Resolves and runs stored workflows for ``subgraph`` nodes (``services["workflows"]``)."""

    async def pin(self, workflow_id: str, version: int | str, *, run_id: str) -> int:
        """The version to run: ``version`` itself, or what ``"latest"`` is pinned to for this run.

        Raises:
            WorkflowNotFound: no such workflow or version.
        """
        ...

    async def invoke(
        self, workflow_id: str, version: int, input: Mapping[str, Any], *, node_id: str
    ) -> Any:
        """Run the workflow as a subgraph of the calling node; return its result.

        The result is what its ``output`` node selected, else its public final state.
        """
        ...


class Config(NodeConfig):
    """Config of a ``subgraph`` node."""

    workflow: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Stored workflow id.")
    version: int | Literal["latest"] = Field(
        default="latest", description="A stored version, or 'latest' (pinned per run)."
    )
    input: dict[str, str] = Field(default_factory=dict, description="{child_key: CEL}.")
    output: dict[str, str] = Field(
        default_factory=dict, description="{state_key: CEL over `result`}."
    )


class Node(BaseNode[Config]):
    """Run the child workflow."""

    type_name: ClassVar[str] = "subgraph"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._input = [(k, self.expr(v)) for k, v in config.input.items()]
        self._output = [(k, self.expr_with(v, _RESULT)) for k, v in config.output.items()]

    def expr_with(self, source: str, extra: frozenset[str]) -> Expression:
        """Compile an expression that also sees ``extra`` variables."""
        return compile_expression(source, extra_variables=self.extra_variables | extra)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Pin the version, run the child, map its result."""
        runner = ctx.services.get("workflows")
        if not isinstance(runner, WorkflowRunner):
            raise NodeExecutionError(
                "subgraph nodes need a workflow store: run them in a Runtime "
                "(or pass services['workflows'])"
            )
        workflow = self.config.workflow
        version = await runner.pin(workflow, self.config.version, run_id=str(ctx.run.get("id")))
        child_input = {k: ctx.evaluate(e, f"input.{k}") for k, e in self._input}
        result = to_view(await runner.invoke(workflow, version, child_input, node_id=self.node_id))
        update = {k: ctx.evaluate(e, f"output.{k}", result=result) for k, e in self._output}
        shown = {k: to_view(v) for k, v in update.items()}
        return NodeOutput(update=update, result={"workflow": workflow, "version": version, **shown})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        refs = [ExpressionRef(path=pointer("input", k), source=v) for k, v in config.input.items()]
        refs += [
            ExpressionRef(path=pointer("output", k), source=v, extra_variables=_RESULT)
            for k, v in config.output.items()
        ]
        return refs

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        return set(config.output)
