"""Runtime-side glue for the AI and integration nodes (llm, tool, http, subgraph, human).

* :func:`prepare_services` turns what a ``Runtime`` is given into the service objects nodes use
  (a ``ModelFactory``, a ``ToolRegistry`` with the ``graph_runtime.tools`` entry points, the
  credential store) and :func:`reference_names` lists their names for validation rule 18.
* :class:`StoreWorkflowRunner` is ``services["workflows"]`` for subgraph nodes: it pins
  ``"latest"`` per run, compiles the child with the run's compiler and invokes it as a subgraph.
* :func:`check_references` validates a document against those registries and the workflow
  store (rules 17 and 18) before it is saved; the store is async, so referenced workflows are
  fetched first and the synchronous validator reads them from that snapshot.
* :func:`check_answer` refuses a resume value that does not answer the pending human question.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from langgraph.runtime import get_runtime

from checkpoints.store import RunRecord, RunStore
from graph_runtime._validation_refs import MAX_SUBGRAPH_DEPTH
from graph_runtime.compiler import CompiledWorkflow, Compiler, RunContext
from graph_runtime.errors import (
    InputValidationError,
    NodeExecutionError,
    Problem,
    WorkflowNotFound,
    WorkflowValidationError,
)
from graph_runtime.schema import WorkflowDefinition
from graph_runtime.validation import check_workflow, load_workflow
from nodes._models import ModelFactory
from nodes._tools import ToolRegistry
from nodes.base import OUTPUT_KEY, public_state
from nodes.human import response_problems
from nodes.registry import NodeRegistry

__all__ = [
    "StoreWorkflowRunner",
    "check_answer",
    "check_references",
    "prepare_services",
    "reference_names",
]

logger = logging.getLogger(__name__)

#: How many referenced workflows one save may fetch to look for cycles.
MAX_FETCHED = 200
_MAX_PINS = 10_000


def prepare_services(services: Mapping[str, Any]) -> dict[str, Any]:
    """The services nodes see: ``models`` a factory, ``tools`` a registry, ``credentials`` a map.

    Without ``tools``, the registry holds what installed packages publish under the
    ``graph_runtime.tools`` entry point group.
    """
    out = dict(services)
    out["models"] = ModelFactory.coerce(out.get("models"))
    tools = out.get("tools")
    out["tools"] = ToolRegistry.from_entry_points() if tools is None else ToolRegistry.coerce(tools)
    out["credentials"] = dict(out.get("credentials") or {})
    return out


def load_tools(paths: Collection[str], base: Any = None) -> ToolRegistry:
    """A tool registry of ``base`` (default: the entry points) plus the tools at ``paths``.

    Each path is ``module:attribute`` naming a tool, a list of tools or a ``{name: tool}``
    mapping.

    Raises:
        InputValidationError: a path does not import or names something else.
    """
    registry = ToolRegistry.from_entry_points() if base is None else ToolRegistry.coerce(base)
    for path in paths:
        module_name, _, attribute = path.partition(":")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InputValidationError(f"cannot load tools {path!r}: {exc}") from exc
        items = (
            value.items()
            if isinstance(value, Mapping)
            else (
                [(None, t) for t in value] if isinstance(value, list | tuple) else [(None, value)]
            )
        )
        for name, item in items:
            registry.register(item, name=name, replace=True)
    return registry


def reference_names(services: Mapping[str, Any]) -> dict[str, Collection[str]]:
    """The model, tool and credential names a document may use (``check_workflow`` kwargs)."""
    return {
        "models": sorted(ModelFactory.coerce(services.get("models")).names()),
        "tools": ToolRegistry.coerce(services.get("tools")).names(),
        "credentials": sorted(services.get("credentials") or {}),
    }


class WorkflowHost(Protocol):
    """What the runner needs from the ``Runtime``: its store, compiler and node registry."""

    @property
    def store(self) -> RunStore: ...

    @property
    def compiler(self) -> Compiler: ...

    @property
    def registry(self) -> NodeRegistry: ...


class StoreWorkflowRunner:
    """Resolves and runs stored workflows for ``subgraph`` nodes (a ``WorkflowRunner``)."""

    def __init__(self, host: WorkflowHost) -> None:
        self.host = host
        self._pins: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._definitions: dict[tuple[str, int], WorkflowDefinition] = {}

    async def pin(self, workflow_id: str, version: int | str, *, run_id: str) -> int:
        """``version``, or for ``"latest"`` the newest version stored when the run was submitted.

        Raises:
            WorkflowNotFound: no such workflow or version.
        """
        store = self.host.store
        if isinstance(version, int):
            await store.get_workflow(workflow_id, version)
            return version
        key = (run_id, workflow_id)
        if key in self._pins:
            return self._pins[key]
        versions = await store.workflow_versions(workflow_id)
        if not versions:
            raise WorkflowNotFound(f"workflow {workflow_id!r} is not stored")
        chosen = versions[-1]
        submitted = (await store.get_run(run_id)).created_at
        # Derived from the run's submission time, not cached state alone, so a resume in a
        # new process pins the same version.
        for v in reversed(versions):
            if (await store.get_workflow(workflow_id, v)).created_at <= submitted:
                chosen = v
                break
        self._pins[key] = chosen
        if len(self._pins) > _MAX_PINS:
            self._pins.popitem(last=False)
        return chosen

    async def definition(self, workflow_id: str, version: int) -> WorkflowDefinition:
        """The parsed definition of a stored version (cached)."""
        key = (workflow_id, version)
        hit = self._definitions.get(key)
        if hit is None:
            stored = await self.host.store.get_workflow(workflow_id, version)
            hit = load_workflow(
                stored.definition, workflow_id=workflow_id, registry=self.host.registry
            ).model_copy(update={"version": version})
            self._definitions[key] = hit
        return hit

    async def invoke(
        self, workflow_id: str, version: int, input: Mapping[str, Any], *, node_id: str
    ) -> Any:
        """Run the child inside the calling node, as a LangGraph subgraph of its task."""
        definition = await self.definition(workflow_id, version)
        compiled = self.host.compiler.compile(definition, input_keys=frozenset(input))
        parent = get_runtime(RunContext).context
        if parent.step_prefix.count("/") >= MAX_SUBGRAPH_DEPTH:
            raise NodeExecutionError(f"subgraphs are nested deeper than {MAX_SUBGRAPH_DEPTH}")
        context = dataclasses.replace(
            parent,
            workflow_id=workflow_id,
            version=version,
            step_prefix=f"{parent.step_prefix}{node_id}/",
        )
        # No config: the parent task's config (checkpointer, namespace, callbacks, stream) is
        # inherited, which is what makes this a subgraph rather than a separate run.
        final = await compiled.graph.ainvoke(compiled.initial_input(input), context=context)
        if isinstance(final, Mapping) and final.get(OUTPUT_KEY) is not None:
            return final[OUTPUT_KEY]
        return public_state(final) if isinstance(final, Mapping) else final


async def _fetch_references(
    host: WorkflowHost, definition: WorkflowDefinition
) -> dict[tuple[str, str], WorkflowDefinition]:
    found: dict[tuple[str, str], WorkflowDefinition] = {}
    todo, depth = [definition], 0
    while todo and depth <= MAX_SUBGRAPH_DEPTH and len(found) < MAX_FETCHED:
        nxt = []
        for current in todo:
            for n in current.nodes:
                ref, version = n.config.get("workflow"), n.config.get("version", "latest")
                key = (str(ref), str(version))
                if n.type != "subgraph" or not isinstance(ref, str) or key in found:
                    continue
                try:
                    stored = await host.store.get_workflow(
                        ref, version if isinstance(version, int) else None
                    )
                    child = load_workflow(
                        stored.definition, workflow_id=ref, registry=host.registry
                    )
                except (WorkflowNotFound, WorkflowValidationError):
                    continue
                found[key] = child
                nxt.append(child)
        todo, depth = nxt, depth + 1
    return found


async def check_references(
    host: WorkflowHost, services: Mapping[str, Any], definition: WorkflowDefinition
) -> None:
    """Rules 17 and 18 against the server's registries and the stored workflows.

    Raises:
        WorkflowValidationError: an unknown model, tool, credential or workflow, or a
            subgraph reference cycle.
    """
    fetched = await _fetch_references(host, definition)
    problems = check_workflow(
        definition,
        registry=host.registry,
        resolve_workflow=lambda ref, version: fetched.get((ref, str(version))),
        **reference_names(services),  # type: ignore[arg-type]
    )
    if any(p.severity == "error" for p in problems):
        raise WorkflowValidationError(problems)


async def check_answer(compiled: CompiledWorkflow, record: RunRecord, value: Any) -> None:
    """Refuse ``value`` when it does not answer the run's pending human question (E001).

    With several pending interrupts, ``value`` maps interrupt ids to answers (LangGraph's
    form); each answer to a human question is checked.

    Raises:
        InputValidationError: with one problem per mismatch, paths under the interrupt id.
    """
    snapshot = await compiled.graph.aget_state(compiled.config(record.thread_id))
    pending = list(snapshot.interrupts)
    questions = {
        i.id: i.value
        for i in pending
        if isinstance(i.value, Mapping) and i.value.get("type") == "human"
    }
    if not questions:
        return
    if len(pending) == 1:
        answers = {pending[0].id: value}
    elif isinstance(value, Mapping) and set(value) <= {i.id for i in pending}:
        answers = dict(value)
    else:
        return  # LangGraph itself refuses a single answer to several questions
    problems = [
        Problem(path=f"/{qid}", message=message)
        for qid, answer in answers.items()
        if qid in questions
        for message in response_problems(questions[qid], answer)
    ]
    if problems:
        detail = "; ".join(p.message for p in problems[:5])
        raise InputValidationError(f"the answer was refused: {detail}", problems=problems)
