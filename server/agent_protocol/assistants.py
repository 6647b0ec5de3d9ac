"""Assistants: one per stored workflow, with a deterministic id.

An assistant's id is ``uuid5(6ba7b821-9dad-11d1-80b4-00c04fd430c8, graph_id)``, the id
``langgraph dev`` gives the system assistant of a graph, so ids agree across servers. The graph
id is the workflow id, and every path or body that takes an assistant id takes a graph id too.
"""

from __future__ import annotations

import uuid
from typing import Any

from checkpoints.store import StoredWorkflow
from graph_runtime.compiler import CompiledWorkflow
from graph_runtime.errors import NotFoundError, WorkflowNotFound
from graph_runtime.launch import jsonable
from graph_runtime.runtime import Runtime
from graph_runtime.schema import WorkflowDefinition
from server.agent_protocol.models import Assistant, AssistantSearch, GraphSchemas

__all__ = [
    "ASSISTANT_NAMESPACE",
    "Assistants",
    "assistant_id_for",
    "canonical_uuid",
]

#: The namespace ``langgraph-api`` derives system assistant ids from.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def assistant_id_for(graph_id: str) -> str:
    """The assistant id of a workflow."""
    return str(uuid.uuid5(ASSISTANT_NAMESPACE, graph_id))


def canonical_uuid(value: str) -> str | None:
    """``value`` as a lowercase hyphenated UUID, or None if it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


class Assistants:
    """Reads assistants off the workflow store; nothing of theirs is stored apart."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # assistant id -> workflow id; refreshed on a miss (workflows are added at any time).
        self._ids: dict[str, str] = {}

    async def resolve(self, assistant_or_graph_id: str) -> StoredWorkflow:
        """The latest version of the workflow an assistant id or a graph id names.

        Raises:
            NotFoundError: no such assistant or workflow.
        """
        key = canonical_uuid(assistant_or_graph_id)
        graph_id = assistant_or_graph_id
        if key is not None:
            graph_id = self._ids.get(key) or ""
            if not graph_id:
                await self._refresh()
                graph_id = self._ids.get(key) or ""
        if graph_id:
            try:
                return await self.runtime.get_workflow(graph_id)
            except WorkflowNotFound:
                pass
        raise NotFoundError(f"Assistant {assistant_or_graph_id!r} not found")

    async def _refresh(self) -> None:
        workflows = await self.runtime.list_workflows()
        self._ids = {assistant_id_for(w.workflow_id): w.workflow_id for w in workflows}

    async def assistant(self, stored: StoredWorkflow) -> Assistant:
        """The assistant of a stored workflow."""
        first = stored
        if stored.version > 1:
            first = await self.runtime.get_workflow(stored.workflow_id, 1)
        document = stored.definition
        name = document.get("name")
        description = document.get("description")
        return Assistant(
            assistant_id=assistant_id_for(stored.workflow_id),
            graph_id=stored.workflow_id,
            metadata={"created_by": "system"},
            name=name if isinstance(name, str) and name else stored.workflow_id,
            description=description if isinstance(description, str) else None,
            version=stored.version,
            created_at=first.created_at,
            updated_at=stored.created_at,
        )

    async def search(self, query: AssistantSearch) -> tuple[list[Assistant], int]:
        """One page of the assistants matching ``query``, and how many match in all."""
        workflows = await self.runtime.list_workflows()
        self._ids = {assistant_id_for(w.workflow_id): w.workflow_id for w in workflows}
        found = []
        for stored in workflows:
            if query.graph_id is not None and stored.workflow_id != query.graph_id:
                continue
            assistant = await self.assistant(stored)
            if query.name is not None and query.name.lower() not in assistant.name.lower():
                continue
            if query.metadata and not matches(assistant.metadata, query.metadata):
                continue
            found.append(assistant)
        key = query.sort_by or "created_at"
        found.sort(key=lambda a: getattr(a, key), reverse=(query.sort_order or "desc") == "desc")
        return found[query.offset : query.offset + query.limit], len(found)

    def definition(self, stored: StoredWorkflow) -> WorkflowDefinition:
        """The parsed definition of a stored version (cached by the run manager)."""
        manager = self.runtime.manager
        return manager.definition(stored.workflow_id, stored.version, stored.definition)

    def compiled(
        self, stored: StoredWorkflow, input_keys: frozenset[str] = frozenset()
    ) -> CompiledWorkflow:
        """The compiled graph of a stored version (cached by the compiler)."""
        return self.runtime.compiler.compile(self.definition(stored), input_keys=input_keys)

    def graph(self, stored: StoredWorkflow, xray: int | bool = False) -> dict[str, Any]:
        """The drawable graph: ``{nodes: [{id, type, data}], edges: [{source, target}]}``."""
        drawn = self.compiled(stored).graph.get_graph(xray=xray).to_json()
        nodes = []
        for node in drawn["nodes"]:
            data = node.get("data")
            if isinstance(data, dict):
                # The reference shows the node's name; the runnable's import path is noise.
                data = {"name": data.get("name", node["id"])}
                node = {**node, "data": data}
            nodes.append(jsonable(node))
        return {"nodes": nodes, "edges": jsonable(drawn["edges"])}

    def schemas(self, stored: StoredWorkflow) -> GraphSchemas:
        """JSON Schemas of the workflow's input, output and state, from its document."""
        definition = self.definition(stored)
        return GraphSchemas(
            graph_id=stored.workflow_id,
            input_schema=_input_schema(definition),
            output_schema=_output_schema(definition),
            state_schema=_state_schema(definition),
            config_schema=None,
            context_schema=None,
        )


def matches(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """True when every key of ``want`` is in ``have`` with an equal value (JSON containment)."""
    return all(key in have and have[key] == value for key, value in want.items())


def _input_schema(definition: WorkflowDefinition) -> dict[str, Any] | None:
    for node in definition.nodes:
        if node.type == "input":
            schema = node.config.get("schema")
            return schema if isinstance(schema, dict) else {"type": "object"}
    return None


def _output_schema(definition: WorkflowDefinition) -> dict[str, Any] | None:
    keys: set[str] = set()
    for node in definition.nodes:
        if node.type == "output":
            select = node.config.get("select")
            if isinstance(select, dict):
                keys.update(select)
    if not keys:
        return None
    return {"type": "object", "properties": {k: {} for k in sorted(keys)}}


def _state_schema(definition: WorkflowDefinition) -> dict[str, Any] | None:
    if definition.state is None:
        return None
    properties: dict[str, Any] = {}
    for key, spec in definition.state.items():
        prop: dict[str, Any] = {}
        if spec.type is not None:
            types = spec.type if isinstance(spec.type, list) else [spec.type]
            # "messages" is ours (a chat history): a JSON array on the wire.
            named = ["array" if t == "messages" else t for t in types]
            prop["type"] = named[0] if len(named) == 1 else named
        if spec.description:
            prop["description"] = spec.description
        if spec.enum is not None:
            prop["enum"] = spec.enum
        if spec.items is not None:
            prop["items"] = spec.items
        if spec.has_default:
            prop["default"] = jsonable(spec.default)
        properties[key] = prop
    return {"type": "object", "properties": properties}
