"""``human``: pause the run for a person's answer (LangGraph ``interrupt()``), then branch on it.

The node calls ``interrupt({"type": "human", "node", "prompt", "actions", "schema",
"expires_at"})``; the run pauses with that value in its ``interrupt`` event. The answer arrives
as ``Command(resume=value)`` (``Runtime.resume(run_id, value)``, ``POST .../resume``): a string
action (``"approve"``) or an object (``{"action": "edit", "text": "..."}``). It must match
``response_schema`` and name one of ``actions``; the action is the branch taken and the whole
answer goes to ``output``. ``Runtime.resume`` refuses a bad answer up front (E001, HTTP 422,
the run stays paused); one that arrives another way is refused here: the node logs the E001 and
interrupts again with an ``error`` in the payload.

``timeout`` (seconds) gives the question a deadline (``expires_at``, counted from the checkpoint
the node started from, so it is stable across re-executions); an answer, or a resume without a
value, after the deadline takes branch ``timeout`` and writes ``{"action": "timeout"}``.
Something must resume the run for that to happen: the execution service does, at the deadline.

**Re-execution.** LangGraph re-runs a node from its first line when it resumes: everything
before ``interrupt()`` runs again (here: rendering the prompt, reading the clock), and each
earlier answer is replayed to the ``interrupt()`` call it answered. Keep side effects out of
code that precedes an interrupt; put them in the next node. ``cache`` on a human node is
refused at validation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import jsonschema
from langgraph.errors import GraphInterrupt
from langgraph.runtime import get_runtime
from langgraph.types import interrupt
from pydantic import Field, model_validator

from graph_runtime.expressions import to_view
from graph_runtime.models import ErrorCode, utcnow
from nodes._config import NodeConfig
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput

__all__ = ["TIMEOUT_BRANCH", "Config", "Node", "action_of", "response_problems"]

TIMEOUT_BRANCH = "timeout"
ANSWERED_BRANCH = "answered"
#: 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH = 0x01B21DD213814000


class Config(NodeConfig):
    """Config of a ``human`` node."""

    prompt: str = Field(min_length=1, max_length=65536, description="Question template.")
    actions: list[str] = Field(
        default_factory=list, description="Allowed answers; each is a branch name."
    )
    response_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the answer must match (E001 otherwise)."
    )
    output: str | None = Field(default=None, description="State key for the answer.")
    timeout: float | None = Field(
        default=None, gt=0, description="Seconds to answer; then branch 'timeout'."
    )

    @model_validator(mode="after")
    def _actions(self) -> Config:
        if len(set(self.actions)) != len(self.actions):
            raise ValueError("actions must be unique")
        if TIMEOUT_BRANCH in self.actions:
            raise ValueError("'timeout' is the branch of an expired question, not an action")
        return self


def action_of(value: Any) -> str | None:
    """The action an answer names: the string itself, or its ``action`` field."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("action"), str):
        return str(value["action"])
    return None


def response_problems(question: Mapping[str, Any], value: Any) -> list[str]:
    """Why ``value`` does not answer ``question`` (an interrupt payload); empty when it does."""
    problems = []
    schema = question.get("schema")
    if isinstance(schema, Mapping | bool):
        validator = jsonschema.validators.validator_for(schema)(schema)
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.path)):
            where = "/" + "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{where}: {error.message}")
    actions = question.get("actions") or []
    if actions and action_of(value) not in actions:
        problems.append(f"the answer must name one of the actions {actions}")
    return problems


def _started_at() -> dt.datetime:
    # The checkpoint id (a UUIDv6) carries the time the node's superstep was checkpointed:
    # the same on every re-execution, unlike the clock.
    try:
        info = get_runtime().execution_info
        u = uuid.UUID(info.checkpoint_id) if info is not None else None
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError):
        u = None  # outside a LangGraph run (unit tests): the clock will do
    if u is None or u.version != 6:
        return utcnow()
    stamp = ((u.int >> 80) << 12) | ((u.int >> 64) & 0x0FFF)
    return dt.datetime.fromtimestamp((stamp - _UUID_EPOCH) / 1e7, dt.UTC)


class Node(BaseNode[Config]):
    """Ask, wait, branch on the answer."""

    type_name: ClassVar[str] = "human"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._prompt = self.template(config.prompt)

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Interrupt until a valid answer arrives (or the deadline passes)."""
        question: dict[str, Any] = {
            "type": "human",
            "node": self.node_id,
            "prompt": ctx.render(self._prompt, "prompt"),
            "actions": list(self.config.actions),
            "schema": self.config.response_schema,
        }
        deadline = None
        if self.config.timeout is not None:
            deadline = _started_at() + dt.timedelta(seconds=self.config.timeout)
            question["expires_at"] = deadline.isoformat()
        refused: list[str] = []
        while True:
            if deadline is not None and utcnow() >= deadline:
                return self._timed_out()
            asked = question
            if refused:
                message = "; ".join(refused)
                asked = {**question, "error": {"code": "E001", "message": message}}
            try:
                value = interrupt(asked)
            except GraphInterrupt:
                # Only a refusal of the newest answer gets here: replayed answers return.
                if refused:
                    code = ErrorCode.VALIDATION_ERROR.value
                    ctx.log("warning", f"{code}: answer refused: {message}")
                raise
            if deadline is not None and utcnow() >= deadline:
                return self._timed_out()
            refused = response_problems(question, value)
            if not refused:
                return self._answered(value)

    def _answered(self, value: Any) -> NodeOutput:
        shown = to_view(value)
        branch = action_of(value) if self.config.actions else None
        if branch is None and self.config.timeout is not None:
            branch = ANSWERED_BRANCH
        update = {self.config.output: shown} if self.config.output else {}
        result: dict[str, Any] = {"answer": shown}
        if branch is not None:
            result["branch"] = branch
        return NodeOutput(update=update, branch=branch, result=result)

    def _timed_out(self) -> NodeOutput:
        answer = {"action": TIMEOUT_BRANCH}
        update = {self.config.output: answer} if self.config.output else {}
        return NodeOutput(update=update, branch=TIMEOUT_BRANCH, result={"branch": TIMEOUT_BRANCH})

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        return [ExpressionRef(path="/prompt", source=config.prompt, kind="template")]

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        return {config.output} if config.output else set()

    @classmethod
    def branches(cls, config: Config) -> list[str] | None:
        if config.timeout is None:
            return list(config.actions) or None
        return [*(config.actions or [ANSWERED_BRANCH]), TIMEOUT_BRANCH]
