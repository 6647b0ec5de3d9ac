"""Workflow documents: validate, store as versions, list, fetch."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from checkpoints.store import StoredWorkflow
from graph_runtime.api_models import (
    ID_PATTERN,
    ErrorItem,
    ValidationReport,
    WorkflowList,
    WorkflowOut,
)
from graph_runtime.errors import InputValidationError, Problem, WorkflowNotFound
from graph_runtime.sdk.builder import document_problems
from server.errors import error_responses
from server.routes._common import RuntimeDep, WorkflowId, check_finite

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

Document = Annotated[
    dict[str, Any],
    Body(description="A workflow document (`graph-runtime/workflow/v1`, see WORKFLOW.md)."),
]
DocumentId = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="The id of a document that has no `id` of its own."),
]


def workflow_out(stored: StoredWorkflow, *, with_definition: bool = True) -> WorkflowOut:
    """The API view of a stored version."""
    document = stored.definition
    name, description = document.get("name"), document.get("description")
    return WorkflowOut(
        workflow_id=stored.workflow_id,
        version=stored.version,
        content_hash=stored.content_hash,
        created_at=stored.created_at,
        name=name if isinstance(name, str) else None,
        description=description if isinstance(description, str) else None,
        definition=document if with_definition else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=WorkflowOut,
    summary="Store a workflow",
    description="Validate the document and store it as the next version of its id (201). An "
    "unchanged document keeps its latest version (200). A document without `id` needs "
    "`?workflow_id=`.",
    responses={
        200: {"model": WorkflowOut, "description": "Unchanged: the latest version."},
        **error_responses(413, 422),
    },
)
async def put_workflow(
    document: Document,
    runtime: RuntimeDep,
    response: Response,
    workflow_id: DocumentId = None,
) -> WorkflowOut:
    check_finite(document, "")
    own_id = document.get("id")
    if own_id is None and workflow_id is None:
        problem = Problem(path="/id", message="missing: give the document an id or ?workflow_id=")
        raise InputValidationError("the workflow has no id", problems=[problem])
    if own_id is not None and workflow_id is not None and own_id != workflow_id:
        problem = Problem(path="/id", message=f"{own_id!r} is not the ?workflow_id={workflow_id}")
        raise InputValidationError("the workflow ids disagree", problems=[problem])
    target = workflow_id if own_id is None else own_id
    before = await _latest(runtime, target) if isinstance(target, str) else None
    stored = await runtime.save_workflow(document, workflow_id=workflow_id)
    # The store returns the latest version unchanged when the content hash is the same.
    if before is not None and before.version == stored.version:
        response.status_code = 200
    else:
        logger.info(
            "workflow stored",
            extra={"action": "workflow_put", "workflow_id": stored.workflow_id},
        )
    return workflow_out(stored)


async def _latest(runtime: RuntimeDep, workflow_id: str) -> StoredWorkflow | None:
    try:
        return await runtime.get_workflow(workflow_id)
    except WorkflowNotFound:
        return None


@router.get(
    "",
    response_model=WorkflowList,
    summary="List workflows",
    description="The latest version of every stored workflow, without the documents.",
)
async def list_workflows(runtime: RuntimeDep) -> WorkflowList:
    stored = sorted(await runtime.list_workflows(), key=lambda w: w.workflow_id)
    return WorkflowList(workflows=[workflow_out(w, with_definition=False) for w in stored])


@router.post(
    "/validate",
    response_model=ValidationReport,
    summary="Validate a workflow",
    description="Check a document without storing it: every error and warning with its JSON "
    "pointer. 200 whether it is valid or not.",
    responses=error_responses(413, 422),
)
async def validate_workflow(
    document: Document, runtime: RuntimeDep, workflow_id: DocumentId = None
) -> ValidationReport:
    check_finite(document, "")
    definition, problems = document_problems(
        document, workflow_id=workflow_id, registry=runtime.registry
    )
    items = [
        ErrorItem(path=p.path, message=p.message, code=p.code, severity=p.severity)
        for p in problems
    ]
    return ValidationReport(
        valid=definition is not None and not any(i.severity == "error" for i in items),
        errors=[i for i in items if i.severity == "error"],
        warnings=[i for i in items if i.severity == "warning"],
    )


@router.get(
    "/{workflow_id}",
    response_model=WorkflowOut,
    summary="Get a workflow",
    description="One stored version with its document (the latest unless `version` is given).",
    responses=error_responses(404, 422),
)
async def get_workflow(
    workflow_id: WorkflowId,
    runtime: RuntimeDep,
    version: Annotated[
        int | None, Query(ge=1, le=2**31, description="A stored version; latest if absent.")
    ] = None,
) -> WorkflowOut:
    return workflow_out(await runtime.get_workflow(workflow_id, version))
