"""The ``graph-runtime`` command: validate, run and describe workflow documents.

::

    graph-runtime validate examples/routing.json [--json]
    graph-runtime run examples/routing.json --input '{"ticket": "refund please"}'
    graph-runtime schema > workflow.schema.json

Exit codes: 0 success (a run that completed or paused at an interrupt), 1 a run failed or timed
out, 2 an invalid workflow, input or command line. Reports and results go to stdout, progress
and diagnostics to stderr, so ``run ... > result.json`` keeps the JSON clean.

Each subcommand is a ``Command``: a function that adds its arguments and a function that runs
it. Adding one (``serve``) means writing those two and listing it in ``COMMANDS``. Every flag
that mirrors runtime configuration also reads a ``GRAPH_RUNTIME_*`` environment variable; the
flag wins over the variable, the variable over the built-in default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import pydantic

from graph_runtime._cli_io import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    CliError,
    check_file,
    count,
    format_problem,
    problem_lines,
    progress_line,
    read_input,
)
from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import GraphRuntimeError, Problem
from graph_runtime.models import ErrorCode, TaskResponse, TaskStatus
from graph_runtime.runtime import Runtime
from graph_runtime.schema import WorkflowDefinition, workflow_json_schema

__all__ = ["COMMANDS", "Command", "build_parser", "config_flag", "main", "runtime_config"]

ENV_PREFIX = "GRAPH_RUNTIME_"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One subcommand: its name, help line, argument setup and handler."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    """Adds the subcommand's arguments to its parser."""
    handler: Callable[[argparse.Namespace], int]
    """Runs the subcommand; returns the exit code."""


# -- environment-backed flags -------------------------------------------------------------------


def env(name: str) -> str | None:
    """The value of ``GRAPH_RUNTIME_<NAME>``, or None when unset or empty."""
    return os.environ.get(ENV_PREFIX + name) or None


def env_flag(name: str) -> bool:
    """True when ``GRAPH_RUNTIME_<NAME>`` is 1/true/yes/on (any case)."""
    return (env(name) or "").strip().lower() in {"1", "true", "yes", "on"}


def config_flag(
    parser: argparse.ArgumentParser, field: str, *flags: str, metavar: str | None = None
) -> None:
    """Add a flag that overrides ``RuntimeConfig.<field>`` (and so its environment variable).

    The flag's value stays None when not given, so ``runtime_config`` can tell "unset" (the
    environment or the default applies) from "given"; pydantic converts and checks it.
    """
    info = RuntimeConfig.model_fields[field]
    default = info.default if info.default is not None else "none"
    parser.add_argument(
        *flags,
        dest=field,
        default=None,
        metavar=metavar,
        help=f"{(info.description or field).rstrip('.')} (env {ENV_PREFIX}{field.upper()}; "
        f"default {default})",
    )


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    """``RuntimeConfig`` from the environment, with the flags that were given on top.

    Raises:
        CliError: a flag or a ``GRAPH_RUNTIME_*`` variable has an invalid value.
    """
    given = {
        name: value
        for name, value in vars(args).items()
        if name in RuntimeConfig.model_fields and value is not None
    }
    try:
        return RuntimeConfig(**given)
    except pydantic.ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(f"invalid setting: {details}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


# -- validate -------------------------------------------------------------------------------


def _validate_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the workflow JSON file ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="print the report as a JSON object")


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a document and report every problem with its JSON pointer."""
    try:
        definition, problems = check_file(args.file)
    except CliError as exc:
        if not args.json:
            raise
        # Tools reading --json get the same object shape for every failure.
        definition, problems = None, [Problem(path="", message=str(exc))]
    if args.json:
        report: dict[str, Any] = {
            "valid": definition is not None,
            "id": definition.id if definition is not None else None,
            "errors": [p.as_dict() for p in problems if p.severity == "error"],
            "warnings": [p.as_dict() for p in problems if p.severity != "error"],
        }
        print(json.dumps(report, indent=2))
    elif definition is None:
        errors = sum(p.severity == "error" for p in problems)
        print(f"invalid: {args.file} ({count(errors, 'error')})")
        _print_lines(problem_lines(problems), sys.stdout)
    else:
        nodes, edges = len(definition.nodes), len(definition.edges)
        print(f"ok: {definition.id} ({count(nodes, 'node')}, {count(edges, 'edge')})")
        _print_lines(problem_lines(problems), sys.stdout)
    return EXIT_OK if definition is not None else EXIT_INVALID


def _print_lines(lines: Sequence[str], out: TextIO) -> None:
    for line in lines:
        print(line, file=out)


# -- run ------------------------------------------------------------------------------------


def _run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the workflow JSON file ('-' for stdin)")
    parser.add_argument(
        "--input",
        "-i",
        metavar="JSON|@FILE",
        help="the run input: a JSON object, or @path to a JSON file (@- for stdin)",
    )
    config_flag(parser, "db", "--db", metavar="PATH")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=env("TIMEOUT"),
        metavar="S",
        help=f"bound on the whole run in seconds (env {ENV_PREFIX}TIMEOUT)",
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=env_flag("QUIET"),
        help=f"no progress on stderr (env {ENV_PREFIX}QUIET=1)",
    )


async def execute(
    definition: WorkflowDefinition,
    input_data: Mapping[str, Any],
    *,
    config: RuntimeConfig,
    timeout: float | None,
    quiet: bool,
) -> TaskResponse:
    """Run a checked workflow to its end (or an interrupt), with progress lines on stderr."""
    async with Runtime(config=config) as rt:
        # Compiling first gives the progress denominator; the run then hits the compile cache.
        total = rt.compile(definition, input_keys=frozenset(input_data)).expected_steps
        run_id = uuid.uuid4().hex
        async for event in rt.stream(
            definition, input_data, run_id=run_id, timeout_seconds=timeout
        ):
            line = None if quiet else progress_line(event, total)
            if line is not None:
                print(line, file=sys.stderr)
        # The stream ends at the run's last event; wait() returns once the store agrees.
        return await rt.wait(run_id)


def exit_code_for(response: TaskResponse) -> int:
    """0 completed or paused, 2 invalid input (E001), 1 any other failure."""
    if response.status in (TaskStatus.COMPLETED, TaskStatus.PAUSED):
        return EXIT_OK
    if response.error_code is ErrorCode.VALIDATION_ERROR:
        return EXIT_INVALID
    return EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    """Run a workflow: progress on stderr, the final ``TaskResponse`` JSON on stdout."""
    input_data = read_input(args.input)
    config = runtime_config(args)
    definition, problems = check_file(args.file)
    if definition is None:
        errors = [p for p in problems if p.severity == "error"]
        print(f"invalid workflow: {args.file} ({count(len(errors), 'error')})", file=sys.stderr)
        _print_lines(problem_lines(problems), sys.stderr)
        return EXIT_INVALID
    if not args.quiet:
        _print_lines(problem_lines(problems), sys.stderr)  # warnings only, here
    try:
        response = asyncio.run(
            execute(definition, input_data, config=config, timeout=args.timeout, quiet=args.quiet)
        )
    except GraphRuntimeError as exc:
        _print_lines([format_problem(p) for p in exc.problems], sys.stderr)
        code = EXIT_INVALID if exc.code is ErrorCode.VALIDATION_ERROR else EXIT_FAILED
        raise CliError(f"{exc.code.value}: {exc.message}", code) from None
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"cannot use the database {str(config.db)!r}: {exc}", EXIT_FAILED) from None
    print(response.model_dump_json(indent=2))
    if response.status is TaskStatus.PAUSED and not args.quiet:
        print(
            f"note: run {response.task_id} is paused at an interrupt; its state is saved in "
            f"{config.db}, so the server or Runtime.resume() can continue it",
            file=sys.stderr,
        )
    return exit_code_for(response)


# -- schema ---------------------------------------------------------------------------------


def _schema_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the workflow document."""
    print(json.dumps(workflow_json_schema(), indent=args.indent))
    return EXIT_OK


# -- entry point ----------------------------------------------------------------------------

COMMANDS: list[Command] = [
    Command(
        name="validate",
        help="check a workflow file",
        configure=_validate_args,
        handler=cmd_validate,
    ),
    Command(
        name="run", help="run a workflow in this process", configure=_run_args, handler=cmd_run
    ),
    Command(
        name="schema",
        help="print the workflow JSON Schema",
        configure=_schema_args,
        handler=cmd_schema,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="graph-runtime",
        description="Validate and run graph-runtime workflow documents.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        doc = (command.handler.__doc__ or command.help).strip().splitlines()[0].replace("``", "")
        child = sub.add_parser(command.name, help=command.help, description=doc)
        command.configure(child)
        child.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # argparse exits on --help and usage errors; turn that into a return value.
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_INVALID
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except CliError as exc:
        print(f"graph-runtime: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("graph-runtime: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
