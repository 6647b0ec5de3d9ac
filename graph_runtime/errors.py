"""The exception tree. Every domain error carries an ``ErrorCode`` and an HTTP status.

::

    GraphRuntimeError
    ├── WorkflowValidationError      E001  422  a workflow document is invalid (all problems)
    ├── InputValidationError         E001  422  a run's input or a resume value is invalid
    ├── ExpressionCompileError       E001  422  a CEL expression does not compile or is too big
    ├── NotFoundError                E001  404
    │   ├── WorkflowNotFound
    │   └── RunNotFound
    ├── ConflictError                E001  409  the request conflicts with the current state
    │   └── InvalidTransition                   an illegal status change (pause a finished run)
    ├── RunTimeoutError              E002  408  a run or a node ran past its timeout
    ├── NodeExecutionError           E003  500  a node raised
    ├── RunCancelledError            E004  409  a run was stopped or cancelled
    ├── RetryExhaustedError          E005  500  a node failed on every attempt
    ├── StoreError                   E006  503  the database failed
    └── ExpressionError              E007  422  a CEL expression failed at run time

Control signals (pause, stop, interrupt) are not errors and are not in this tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from graph_runtime.models import ErrorCode, TaskStatus

__all__ = [
    "ConflictError",
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
    "StoreError",
    "WorkflowNotFound",
    "WorkflowValidationError",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a document or a value, located by a JSON pointer."""

    path: str
    """JSON pointer into the document, e.g. ``/nodes/4/config/branches/1/when``."""
    message: str
    """A sentence a person can act on."""
    code: ErrorCode = ErrorCode.VALIDATION_ERROR
    """The error code; E001 for everything found before a run starts."""
    severity: Literal["error", "warning"] = "error"
    """Warnings are reported but do not make a document invalid."""

    def as_dict(self) -> dict[str, str]:
        """The JSON form used in CLI output and HTTP error bodies."""
        return {
            "path": self.path,
            "message": self.message,
            "code": self.code.value,
            "severity": self.severity,
        }

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message} [{self.code.value}]"


class GraphRuntimeError(Exception):
    """graph-runtime failed."""

    code: ClassVar[ErrorCode] = ErrorCode.EXECUTION_ERROR
    http_status: ClassVar[int] = 500

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (type(self).__doc__ or type(self).__name__).strip()
        super().__init__(self.message)

    @property
    def problems(self) -> list[Problem]:
        """The located problems behind this error (empty for most errors)."""
        return []


class WorkflowValidationError(GraphRuntimeError):
    """The workflow document is invalid."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 422

    def __init__(self, problems: list[Problem], message: str | None = None) -> None:
        self._problems = list(problems)
        errors = [p for p in self._problems if p.severity == "error"]
        if message is None:
            head = f"the workflow has {len(errors)} problem{'s' if len(errors) != 1 else ''}"
            message = head + ": " + "; ".join(str(p) for p in errors[:5])
            if len(errors) > 5:
                message += f"; and {len(errors) - 5} more"
        super().__init__(message)

    @property
    def problems(self) -> list[Problem]:
        return self._problems

    @property
    def path(self) -> str:
        """The pointer of the first problem."""
        return self._problems[0].path if self._problems else ""


class InputValidationError(GraphRuntimeError):
    """The input does not match the schema."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 422

    def __init__(self, message: str | None = None, *, problems: list[Problem] | None = None):
        self._problems = list(problems or [])
        super().__init__(message)

    @property
    def problems(self) -> list[Problem]:
        return self._problems


class ExpressionCompileError(GraphRuntimeError):
    """The expression is not valid."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 422

    def __init__(self, message: str, *, expression: str = "") -> None:
        self.expression = expression
        super().__init__(message)


class NotFoundError(GraphRuntimeError):
    """Not found."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 404


class WorkflowNotFound(NotFoundError):
    """No such workflow."""


class RunNotFound(NotFoundError):
    """No such run."""


class ConflictError(GraphRuntimeError):
    """The request conflicts with the current state."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 409


class InvalidTransition(ConflictError):
    """This status change is not allowed."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 409

    def __init__(self, current: TaskStatus, target: TaskStatus, message: str | None = None):
        self.current = current
        self.target = target
        super().__init__(message or f"cannot go from {current.value!r} to {target.value!r}")


class RunTimeoutError(GraphRuntimeError):
    """The run timed out."""

    code = ErrorCode.TIMEOUT_ERROR
    http_status = 408


class NodeExecutionError(GraphRuntimeError):
    """A node failed."""

    code = ErrorCode.EXECUTION_ERROR
    http_status = 500


class RunCancelledError(GraphRuntimeError):
    """The run was cancelled."""

    code = ErrorCode.CANCELLED_ERROR
    http_status = 409


class RetryExhaustedError(GraphRuntimeError):
    """The node failed on every attempt."""

    code = ErrorCode.RETRY_EXHAUSTED
    http_status = 500


class StoreError(GraphRuntimeError):
    """The database failed."""

    code = ErrorCode.DATABASE_ERROR
    http_status = 503


class ExpressionError(GraphRuntimeError):
    """An expression failed to evaluate."""

    code = ErrorCode.DSL_EVALUATION_ERROR
    http_status = 422

    def __init__(
        self,
        message: str,
        *,
        expression: str = "",
        node_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.expression = expression
        self.node_id = node_id
        self.field = field
        self.detail = message
        where = ""
        if node_id is not None:
            where = f"node {node_id!r}"
            if field:
                where += f" field {field!r}"
            where += ": "
        shown = f" in `{expression}`" if expression else ""
        super().__init__(f"{where}{message}{shown}")

    def located(self, *, node_id: str, field: str) -> ExpressionError:
        """The same error, tagged with the node and the config field it came from."""
        return ExpressionError(
            self.detail, expression=self.expression, node_id=node_id, field=field
        )
