"""What the ``graph-runtime`` command reads and the text it writes, kept apart from argparse.

Nothing here prints: functions return lines and ``cli.py`` decides where they go, so the
stdout/stderr split lives in one module.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graph_runtime.errors import Problem
from graph_runtime.models import Event, EventType
from graph_runtime.schema import ID_PATTERN, WorkflowDefinition
from graph_runtime.sdk.builder import document_problems

__all__ = [
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_OK",
    "CliError",
    "check_file",
    "count",
    "format_problem",
    "problem_lines",
    "progress_line",
    "read_input",
    "read_json",
    "workflow_id_for",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


class CliError(Exception):
    """A problem reported as one line on stderr and an exit code, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- reading --------------------------------------------------------------------------------


def read_json(source: str, *, what: str) -> Any:
    """Parse JSON from a file path (``-`` is stdin).

    Raises:
        CliError: the file cannot be read or is not JSON.
    """
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {what} {source!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read {what} {source!r}: not UTF-8 text ({exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise CliError(f"{what} {source!r} is not valid JSON: {exc.msg} ({where})") from None


def read_input(value: str | None) -> dict[str, Any]:
    """The run input from ``--input``: inline JSON, or ``@path`` (``@-`` is stdin).

    Raises:
        CliError: it is not a JSON object.
    """
    if value is None:
        return {}
    if value.startswith("@"):
        data = read_json(value[1:], what="input file")
    else:
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CliError(f"--input is not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise CliError(f"--input must be a JSON object, got {type(data).__name__}")
    return data


def workflow_id_for(source: str) -> str:
    """An id for a document that has none: its file name as a slug (``My Flow.json`` → my-flow)."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", Path(source).stem.lower()).strip("-_")[:64]
    return slug if re.match(ID_PATTERN, slug) else "workflow"


def check_file(source: str) -> tuple[WorkflowDefinition | None, list[Problem]]:
    """Read, parse and check a workflow file; the definition is None when it has errors.

    Raises:
        CliError: the file cannot be read or is not JSON.
    """
    document = read_json(source, what="workflow file")
    definition, problems = document_problems(document, workflow_id=workflow_id_for(source))
    if any(p.severity == "error" for p in problems):
        definition = None
    return definition, problems


# -- writing --------------------------------------------------------------------------------


def count(n: int, noun: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_problem(problem: Problem) -> str:
    """``  <pointer>: <message> [<code>]``; further message lines (CEL's caret) indented below."""
    head, *rest = problem.message.splitlines() or [""]
    lines = [f"  {problem.path or '/'}: {head} [{problem.code.value}]"]
    lines += [f"      {line}" for line in rest]
    return "\n".join(lines)


def problem_lines(problems: Sequence[Problem]) -> list[str]:
    """Errors, then a ``warnings:`` heading and the warnings, one problem per entry."""
    errors = [format_problem(p) for p in problems if p.severity == "error"]
    warnings = [format_problem(p) for p in problems if p.severity != "error"]
    return errors + (["warnings:", *warnings] if warnings else [])


def progress_line(event: Event, total: int) -> str | None:
    """The progress line of one run event, or None for events not shown (status, tokens...).

    Steps read ``[3/7] classify completed 2.1 ms`` (plus the error code and message of a
    failure); ``total`` is the expected step count.
    """
    data = event.data
    if event.type is EventType.STEP:
        return _step_line(data, total)
    if event.type is EventType.INTERRUPT:
        return f"interrupt: {json.dumps(data.get('value'), default=str)}"
    if event.type is EventType.LOG:
        node = f" {data['node_id']}" if data.get("node_id") else ""
        return f"log{node} [{data.get('level')}]: {data.get('message')}"
    if event.type is EventType.END:
        return f"run {event.run_id} {data.get('status')}"
    return None


def _step_line(data: Mapping[str, Any], total: int) -> str:
    seq = data.get("seq") or 0
    # Loops and map fan-outs run more steps than the longest path; drop the estimate then.
    counter = f"[{seq}/{total}]" if 0 < seq <= total else f"[{seq}]"
    line = f"{counter} {data.get('step')} {data.get('status')}"
    if data.get("duration_ms") is not None:
        line += f" {data['duration_ms']:.1f} ms"
    if (data.get("attempt") or 1) > 1:
        line += f" (attempt {data['attempt']})"
    if data.get("error_code"):
        line += f" {data['error_code']}: {data.get('error_message')}"
    return line
