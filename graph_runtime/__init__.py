"""graph-runtime: a self-hostable runtime for LangGraph agent graphs.

Leaf names (models and errors) are imported eagerly; the core (``Runtime``, ``SyncRuntime``,
``Workflow``...) loads on first access (PEP 562), because the node library imports the leaf
modules of this package and an eager import here would close a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graph_runtime.errors import (
    ConflictError,
    ExpressionCompileError,
    ExpressionError,
    GraphRuntimeError,
    InputValidationError,
    InvalidTransition,
    NodeExecutionError,
    NotFoundError,
    Problem,
    RetryExhaustedError,
    RunCancelledError,
    RunNotFound,
    RunTimeoutError,
    StoreError,
    WorkflowNotFound,
    WorkflowValidationError,
)
from graph_runtime.models import (
    ErrorCode,
    Event,
    EventType,
    TaskRequest,
    TaskResponse,
    TaskStatus,
    TaskStepResult,
)

if TYPE_CHECKING:
    from graph_runtime._sync import SyncRuntime
    from graph_runtime.compiler import CompiledWorkflow, Compiler
    from graph_runtime.runtime import Runtime
    from graph_runtime.schema import WorkflowDefinition
    from graph_runtime.sdk.builder import Workflow
    from graph_runtime.validation import check_workflow, load_workflow

__all__ = [
    "CompiledWorkflow",
    "Compiler",
    "ConflictError",
    "ErrorCode",
    "Event",
    "EventType",
    "ExpressionCompileError",
    "ExpressionError",
    "GraphRuntimeError",
    "InputValidationError",
    "InvalidTransition",
    "NodeExecutionError",
    "NotFoundError",
    "Problem",
    "RetryExhaustedError",
    "RunCancelledError",
    "RunNotFound",
    "RunTimeoutError",
    "Runtime",
    "StoreError",
    "SyncRuntime",
    "TaskRequest",
    "TaskResponse",
    "TaskStatus",
    "TaskStepResult",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowNotFound",
    "WorkflowValidationError",
    "check_workflow",
    "load_workflow",
]

_LAZY = {
    "CompiledWorkflow": "graph_runtime.compiler",
    "Compiler": "graph_runtime.compiler",
    "Runtime": "graph_runtime.runtime",
    "SyncRuntime": "graph_runtime._sync",
    "Workflow": "graph_runtime.sdk.builder",
    "WorkflowDefinition": "graph_runtime.schema",
    "check_workflow": "graph_runtime.validation",
    "load_workflow": "graph_runtime.validation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'graph_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
