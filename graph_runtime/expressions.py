"""The expression DSL: CEL, parsed once, evaluated safely (WORKFLOW.md §1.3 and §2).

Conditions, selections and template holes are CEL, compiled by :func:`compile_expression` and
evaluated against the JSON view built by :func:`to_view`; CEL reaches no host object. This module
adds what the ``cel`` binding (common-expression-language 0.10, cel-rust inside) lacks, each
measured on it:

* Static guards (E001), checked before ``cel.compile`` sees the text. The Rust parser and
  evaluator recurse and a stack overflow kills the process: a 2,000-operator chain segfaults on
  a 1 MiB thread stack, 65 nested brackets on 512 KiB.
* A work budget (E007). The binding holds the GIL and has no cost limit, and its ``map`` and
  ``filter`` copy the accumulated list at every step: 10,000 ints take 4 s, 300 strings of
  100 KB 1.4 s. Costly expressions are priced against the data they read before they run.
* ``default(x, fallback)`` that survives missing keys although CEL is eager: a field path in
  ``x`` is rewritten into a presence test.
* Every run-time failure is an :class:`ExpressionError` (E007) with a hint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cel
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from graph_runtime.errors import ExpressionCompileError, ExpressionError

__all__ = [
    "ALLOWED_VARIABLES",
    "FUNCTIONS",
    "MAX_COMPREHENSION_DEPTH",
    "MAX_EVALUATION_WORK",
    "MAX_LIST_ITEMS",
    "MAX_NESTING",
    "MAX_OPERATOR_CHAIN",
    "MAX_SOURCE_BYTES",
    "MAX_TEMPLATE_CHARS",
    "MAX_VIEW_DEPTH",
    "MISS",
    "Expression",
    "Scope",
    "Template",
    "compile_expression",
    "compile_template",
    "referenced_state_keys",
    "to_view",
]

from graph_runtime._expression_fast import MISS, FastPath, fast_path
from graph_runtime._expression_limits import (
    ALLOWED_VARIABLES,
    FUNCTIONS,
    MAX_COMPREHENSION_DEPTH,
    MAX_EVALUATION_WORK,
    MAX_LIST_ITEMS,
    MAX_NESTING,
    MAX_OPERATOR_CHAIN,
    MAX_SOURCE_BYTES,
    MAX_TEMPLATE_CHARS,
    MAX_VIEW_DEPTH,
)
from graph_runtime._expression_syntax import (
    _CEL_FUNCTIONS,
    _CEL_TYPES,
    _FORBIDDEN_CHARS,
    _I64,
    _IDENT,
    _LEAVES,
    _SCALARS,
    _TOKEN,
    _TYPE_NAMES,
    _rewrite_defaults,
    _Scan,
    _scan,
    referenced_state_keys,
)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.timedelta):
        return value.isoformat() if isinstance(value, dt.datetime) else value.total_seconds()
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _compact_json(value: Any) -> str:
    options: dict[str, Any] = {"ensure_ascii": False, "allow_nan": False, "sort_keys": True}
    return json.dumps(value, separators=(",", ":"), default=_json_default, **options)


def _stringify(value: Any) -> str:
    """A hole or ``join`` element as text: JSON spellings, never Python reprs."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return {None: "", True: "true", False: "false"}[value]
    return _compact_json(value) if isinstance(value, dict | list) else str(value)


def _checked(name: str, kind: type, function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        if not isinstance(value, kind):
            got = _CEL_TYPES.get(type(value), type(value).__name__)
            raise TypeError(f"{name}() expects a {_CEL_TYPES.get(kind, kind.__name__)}, got {got}")
        return function(value)

    return call


def _join(items: Any, separator: Any = "") -> str:
    if not isinstance(items, list) or not isinstance(separator, str):
        raise TypeError("join() expects a list and a string separator")
    return separator.join(map(_stringify, items))


def _has_tool_calls(messages: list[Any]) -> bool:
    last = messages[-1] if messages else None
    return (
        isinstance(last, dict)
        and last.get("type") in ("ai", "AIMessageChunk")
        and bool(last.get("tool_calls"))
    )


_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "join": _join,
    "has_tool_calls": _checked("has_tool_calls", list, _has_tool_calls),
    "json": _compact_json,
    "lower": _checked("lower", str, str.lower),
    "upper": _checked("upper", str, str.upper),
    "trim": _checked("trim", str, str.strip),
    "default": lambda value, fallback: fallback if value is None else value,
}


# The binding logs a warning for every failing Python function; ours are raised as E007 anyway.
_OWN_FAILURE = re.compile(rf"Python function '(?:{'|'.join(FUNCTIONS)})' failed")
logging.getLogger("cel").addFilter(lambda record: not _OWN_FAILURE.match(record.getMessage()))


# -- compiled expressions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    program: cel.Program
    names: tuple[str, ...]
    functions: dict[str, Callable[..., Any]]
    narrow_state: frozenset[str] | None  # the keys to pass, or None for the whole state
    check_cost: bool
    scan: _Scan
    fast: FastPath | None  # the fast lane (see _expression_fast), if the shape allows it


def _measure(value: Any) -> tuple[int, int]:
    """The longest list or map in ``value``, and its size (1 per value, +1 per 64 chars)."""
    longest = units = 0
    stack = [value]
    while stack and units <= MAX_EVALUATION_WORK:  # also ends on cyclic data
        item = stack.pop()
        units += 1 + (len(item) >> 6 if isinstance(item, str) else 0)
        if isinstance(item, dict | list | tuple):
            longest = max(longest, len(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
    return longest, units


def _work(scan: _Scan, env: Mapping[str, Any]) -> tuple[int, int]:
    """Estimated steps for the binding, calibrated on it, and the longest list read.

    Comprehensions iterate ``L ** depth`` times; ``map``/``filter`` copy their accumulator each
    step (``L * U``, plus ``L * L * U_body`` when a body returns outer data); each ``+`` in a
    chain and each variable read may copy everything read (``U``).
    """
    sizes = [_measure(value) for value in env.values()]
    longest, units = max((s[0] for s in sizes), default=0), sum(s[1] for s in sizes)
    work = longest**scan.depth + (scan.concat**2 + scan.refs) * units
    if scan.accumulates:
        body = 0
        for name, key in scan.body_refs:
            value = env.get(name)
            body += _measure(value.get(key) if key and isinstance(value, dict) else value)[1]
        work += longest * units + longest * longest * body
    return work, longest


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL expression; build it with :func:`compile_expression`."""

    source: str
    """The expression as written."""
    variables: frozenset[str]
    """Top-level variables it references (loop variables excluded)."""
    state_keys: frozenset[str]
    """Top-level state keys it reads by name (see :func:`referenced_state_keys`)."""
    _plan: _Plan = field(repr=False, compare=False)
    state_lane: FastPath | None = field(default=None, repr=False, compare=False)
    """The fast lane on the raw state, if the expression reads public state keys only.

    ``state_lane({"state": state})`` takes LangGraph's state as it is, unconverted: the lane
    reads only ints, strings and bools, whose view is the value itself. It returns
    :data:`MISS` when it does not apply (evaluate then); it never raises.
    """

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against ``context``.

        Args:
            context: Variable name to value, built by :func:`to_view`: it caps nesting, and data
                nested ~1,000 deep crashes the binding's converter. A :class:`Scope` converts
                only the variables and state keys the expression reads.

        Returns:
            Plain JSON-like data (maps with string keys); timestamps become ISO strings and
            durations seconds.

        Raises:
            ExpressionError: (E007) on any failure, with the expression and a hint.
        """
        plan = self._plan
        if type(context) is Scope:
            env = context.env(plan.names, plan.narrow_state)
        else:
            env = {name: context[name] for name in plan.names if name in context}
            state = env.get("state")
            if plan.narrow_state is not None and isinstance(state, dict):
                # Convert only what is read: the binding spends ~1-3 µs per value it converts.
                env["state"] = {key: state[key] for key in plan.narrow_state if key in state}
        if (fast := plan.fast) is not None and (value := fast(env)) is not MISS:
            return value
        if plan.check_cost and (priced := _work(plan.scan, env))[0] > MAX_EVALUATION_WORK:
            raise ExpressionError(
                f"too costly for this data (~{priced[0]:,} steps, limit {MAX_EVALUATION_WORK:,};"
                f" longest list read: {priced[1]} items): filter or slice the data in a node, or"
                " use exists()/all() rather than map()/filter()",
                expression=self.source,
            )
        try:
            result = plan.program.execute(env | plan.functions if plan.functions else env)
        except Exception as exc:  # Key/Type/Index/Overflow/ZeroDivision/Runtime/ValueError
            raise ExpressionError(
                _runtime_message(exc, self.source), expression=self.source
            ) from exc
        return result if type(result) in _SCALARS else _plain(result, self.source)


def _plain(value: Any, source: str) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, list):
        return [_plain(item, source) for item in value]
    if isinstance(value, dict):  # sorted: the binding's maps come back in hash order
        pairs = sorted(((_json_key(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return {key: _plain(item, source) for key, item in pairs}
    if isinstance(value, dt.datetime | dt.timedelta):
        return _json_default(value)
    raise ExpressionError(
        f"the result is {type(value).__name__}, which has no JSON form; use string()",
        expression=source,
    )


def _runtime_message(exc: Exception, source: str) -> str:
    text = str(exc).split(". ")[0]
    if isinstance(exc, KeyError):
        key = str(exc.args[0]) if exc.args else "?"
        found = re.search(
            rf"[A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*\s*\.\s*{re.escape(key)}\b", source
        )
        path = re.sub(r"\s+", "", found.group()) if found else f"state.{key}"
        return f"no key {key!r}: use has({path}) or default({path}, fallback) if it is optional"
    if isinstance(exc, TypeError) and (
        re.search(r"\b(u?int|float|double)\b.*\b(u?int|float|double)\b", text) or "overload" in text
    ):
        return f"{text} (CEL never converts numbers: use double(x) to mix int and double)"
    if isinstance(exc, IndexError):
        return f"{text}: check size() first"
    if undefined := re.match(r"Undefined variable or function: '([^']*)'", text):
        return f"{undefined.group(1)!r} is not available here"
    if failed := re.match(r"Function '[^']*' error: Python function call failed: \w+: ", str(exc)):
        return str(exc)[failed.end() :].split(". Check function")[0]
    return text


def _text_problem(source: str) -> str | None:
    if not source.strip():
        return "the expression is empty"
    try:
        size = len(source.encode("utf-8"))
    except UnicodeEncodeError:
        return "the expression is not valid UTF-8 (it has a lone surrogate)"
    if size > MAX_SOURCE_BYTES:
        return f"the expression is over {MAX_SOURCE_BYTES} bytes; move the logic into a node"
    if bad := _FORBIDDEN_CHARS.search(source):
        return f"character U+{ord(bad.group()):04X} at offset {bad.start()} is not allowed"
    return None


def _cel_compile(source: str, shown: str) -> cel.Program:
    try:
        return cel.compile(source)
    except Exception as exc:  # a ValueError carrying cel-rust's caret message
        text = str(exc)
        lines = text[text.find("ERROR:") :].split("\n") if "ERROR:" in text else [text]
        if (column := re.match(r"ERROR: <input>:\d+:(\d+):", lines[0])) and len(text) > 600:
            start = max(int(column.group(1)) - 70, 0)  # window a long source around the caret
            lines = lines[:1] + [f"| {line[2 + start : 142 + start]}" for line in lines[1:]]
        raise ExpressionCompileError("\n".join(lines), expression=shown) from None


@lru_cache(maxsize=1024)
def _compile(source: str, extra: frozenset[str]) -> Expression:
    # The token scan runs before cel.compile: the Rust parser itself overflows on long chains.
    if problem := _text_problem(source) or (scan := _scan(source)).problem:
        raise ExpressionCompileError(problem, expression=source)
    program = _cel_compile(source, source)
    references, allowed = program.references(), ALLOWED_VARIABLES | extra
    variables = frozenset(references["variables"]) - (scan.bound - scan.free) - _TYPE_NAMES
    called = {name for name in references["functions"] if _IDENT.fullmatch(name)}
    if unknown := sorted(variables - allowed):
        raise ExpressionCompileError(
            f"unknown variable {unknown[0]!r}; expressions can read {', '.join(sorted(allowed))}",
            expression=source,
        )
    if unknown := sorted(called - _CEL_FUNCTIONS - FUNCTIONS):
        raise ExpressionCompileError(f"unknown function {unknown[0]!r}", expression=source)
    if "default" in called:
        try:
            # Comments go first: the rewrite puts arguments on one line, where `//` would eat it.
            spaced = (" " if m.lastgroup == "skip" else m.group() for m in _TOKEN.finditer(source))
            rewritten = _rewrite_defaults("".join(spaced))
        except ValueError as exc:
            raise ExpressionCompileError(str(exc), expression=source) from None
        if len(rewritten) > 8 * MAX_SOURCE_BYTES:  # each rewrite repeats its path
            raise ExpressionCompileError("default() is nested too deeply", expression=source)
        program = _cel_compile(rewritten, source)
        called = {name for name in program.functions() if _IDENT.fullmatch(name)}
    plan = _Plan(
        program=program,
        names=tuple(sorted(variables)),
        functions={name: _IMPLEMENTATIONS[name] for name in called & FUNCTIONS},
        narrow_state=None if scan.whole_state else frozenset(scan.state_keys),
        check_cost=scan.depth > 0 or scan.concat > 8 or scan.refs > 8,
        scan=scan,
        fast=None if called else fast_path(source, variables),
    )
    state_keys = frozenset(scan.state_keys)
    lane = plan.fast
    if variables != {"state"} or scan.whole_state or any(k.startswith("__") for k in state_keys):
        lane = None  # it reads more than public state keys by name
    return Expression(source, variables, state_keys, plan, lane)


def _extra(names: Collection[str]) -> frozenset[str]:
    for name in names:
        if not isinstance(name, str) or not _IDENT.fullmatch(name) or name.startswith("__"):
            raise ExpressionCompileError(f"{name!r} cannot be an expression variable")
    return frozenset(names)


def compile_expression(source: str, *, extra_variables: Collection[str] = ()) -> Expression:
    """Parse and check a CEL expression once; results are cached.

    Args:
        source: CEL text of at most ``MAX_SOURCE_BYTES`` UTF-8 bytes.
        extra_variables: Names allowed besides ``ALLOWED_VARIABLES`` (a map's ``as`` name).

    Returns:
        The compiled expression.

    Raises:
        ExpressionCompileError: (E001) for a parse error (with CEL's caret message), an unknown
            variable or function, a ``__`` name, a control character, a broken ``default()``,
            or a size, nesting, operator-chain or comprehension-depth limit.
    """
    if not isinstance(source, str):
        raise ExpressionCompileError(f"an expression must be a string, not {type(source).__name__}")
    return _compile(source, _extra(extra_variables))


# -- the JSON view --------------------------------------------------------------------------


class _ViewError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.path: list[str] = []


def _json_key(key: Any) -> str:
    return (
        key if isinstance(key, str) else json.dumps(key) if key in (None, True, False) else str(key)
    )


def _view(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is int:  # out of int64 the binding would pick uint or a lossy double by itself
        return value if _I64[0] <= value <= _I64[1] else float(value)
    if depth >= MAX_VIEW_DEPTH:
        raise _ViewError(f"is nested deeper than {MAX_VIEW_DEPTH} levels")
    if kind is dict or kind is list or kind is tuple:
        if len(value) > MAX_LIST_ITEMS:
            raise _ViewError(f"has {len(value)} items; the limit is {MAX_LIST_ITEMS}")
        if kind is not dict:  # scalars inline below: a call per value doubles the cost
            return [v if type(v) in _LEAVES else _child(v, depth, i) for i, v in enumerate(value)]
        pairs = ((k if type(k) is str else _json_key(k), v) for k, v in value.items())
        return {k: v if type(v) in _LEAVES else _child(v, depth, k) for k, v in pairs}
    if isinstance(value, BaseMessage):
        fields = vars(value)  # a missing attribute would go through pydantic's slow __getattr__
        keys = ("type", "content", "tool_calls", "id", "name", "tool_call_id")
        view = {key: fields.get(key) for key in keys} | {"type": value.type}
        view["tool_calls"] = view["tool_calls"] or []
        return _view({k: v for k, v in view.items() if k != "tool_call_id" or v}, depth)
    if isinstance(value, BaseModel | Mapping | set | frozenset | list | tuple):
        plain = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        return _view(dict(plain) if isinstance(plain, Mapping) else list(plain), depth)
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return value.total_seconds() if isinstance(value, dt.timedelta) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raise _ViewError("is bytes; decode it before it reaches an expression")
    for base in (bool, int, float, str):  # enums and other subclasses of JSON scalars
        if isinstance(value, base):
            return _view(str.__str__(value) if base is str else base(value), depth)
    return str(value)


def _child(value: Any, depth: int, step: int | str) -> Any:
    try:
        return _view(value, depth + 1)
    except _ViewError as exc:
        exc.path.append(f"[{step}]" if isinstance(step, int) else f".{step}")
        raise


def to_view(value: Any) -> Any:
    """The JSON view of a Python value: the only data expressions ever see.

    Dicts, lists, tuples and sets are copied (keys become strings, as in JSON); LangChain messages
    become ``{type, content, tool_calls, id, name}`` (plus ``tool_call_id`` on tool messages);
    pydantic models their ``model_dump(mode="json")``; dates ISO strings; timedeltas seconds;
    ints beyond int64 floats; enums their value; other objects ``str(obj)``.

    Raises:
        ExpressionError: (E007) for bytes, a list or map over ``MAX_LIST_ITEMS`` or data nested
            deeper than ``MAX_VIEW_DEPTH``, naming where.
    """
    try:
        return _view(value, 0)
    except _ViewError as exc:
        where = "".join(reversed(exc.path)).lstrip(".") or "the value"
        raise ExpressionError(f"cannot show {where} to expressions: it {exc}") from None


class Scope(Mapping[str, Any]):
    """Expression variables that become their JSON view when an expression first reads them.

    ``state`` is converted key by key: ``state.count + 1`` converts ``count`` and nothing
    else, however large the rest of the state is (the conversion, not the evaluation, is
    what a step's expressions cost on a real state). Conversions are cached, so the
    expressions of one node attempt or one router call share them. A value that cannot be
    shown (bytes, too deep, too long) raises the same :class:`ExpressionError` as
    :func:`to_view` when it is read.

    As a mapping it holds the fully converted variables, like the dict it stands for.
    """

    __slots__ = ("_raw", "_state", "_state_views", "_views")

    def __init__(
        self,
        state: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        views: Mapping[str, Any] | None = None,
    ) -> None:
        """Variables of one evaluation site.

        Args:
            state: The public state (runtime keys already left out), shown as ``state``.
            values: Other variables, as Python values (converted when read).
            views: Variables that already are JSON views (used as given).
        """
        self._state = state
        self._state_views: dict[str, Any] = {}
        self._raw: dict[str, Any] = dict(values) if values else {}
        self._views: dict[str, Any] = dict(views) if views else {}
        # The precedence of `{"state": ..., **values, **views}`: a later source wins.
        for name in self._views:
            self._raw.pop(name, None)
        if state is not None and ("state" in self._raw or "state" in self._views):
            self._state = None

    def with_views(self, views: Mapping[str, Any]) -> Scope:
        """This scope plus (or overridden by) ``views``, sharing what was converted so far."""
        scope = Scope.__new__(Scope)
        scope._state = None if "state" in views else self._state
        scope._state_views = self._state_views
        scope._raw = {k: v for k, v in self._raw.items() if k not in views}
        scope._views = {**self._views, **views}
        return scope

    def env(self, names: tuple[str, ...], state_keys: frozenset[str] | None) -> dict[str, Any]:
        """The variables ``names`` (those defined), ``state`` narrowed to ``state_keys``."""
        env: dict[str, Any] = {}
        for name in names:
            if name == "state" and self._state is not None:
                state = self._state
                if state_keys is None or len(state) > MAX_LIST_ITEMS:
                    env[name] = self["state"]  # the whole view (or the same error as to_view)
                else:
                    env[name] = {k: self._state_view(state, k) for k in state_keys if k in state}
            elif name in self:
                value = self[name]
                if name == "state" and state_keys is not None and isinstance(value, dict):
                    value = {key: value[key] for key in state_keys if key in value}
                env[name] = value
        return env

    def _state_view(self, state: Mapping[str, Any], key: str) -> Any:
        views = self._state_views
        if key in views:
            return views[key]
        value = state[key]
        if type(value) not in _LEAVES:
            try:
                # As inside to_view(state): depth and error path as for the whole state.
                value = _child(value, 0, key)
            except _ViewError as exc:
                where = "".join(reversed(exc.path)).lstrip(".")
                raise ExpressionError(f"cannot show {where} to expressions: it {exc}") from None
        views[key] = value
        return value

    def __getitem__(self, name: str) -> Any:
        views = self._views
        if name in views:
            return views[name]
        if name == "state" and self._state is not None:
            state = self._state
            if len(state) > MAX_LIST_ITEMS:
                view = to_view(state)  # raises as it always did
            else:
                view = {k: self._state_view(state, k) for k in state}
        else:
            view = to_view(self._raw[name])
        views[name] = view
        return view

    def __contains__(self, name: object) -> bool:
        return (
            name in self._views
            or name in self._raw
            or (name == "state" and self._state is not None)
        )

    def __iter__(self) -> Iterator[str]:
        # Converted values are cached in _views: each name once, in first-seen order.
        names = dict.fromkeys(["state"] if self._state is not None else [])
        names.update(dict.fromkeys(self._raw))
        names.update(dict.fromkeys(self._views))
        return iter(names)

    def __len__(self) -> int:
        return len(list(iter(self)))


# -- templates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """Text with ``{{ CEL }}`` holes; build it with :func:`compile_template`."""

    source: str
    """The template as written."""
    parts: tuple[str | Expression, ...]
    """Literal text and compiled holes, in order."""
    state_keys: frozenset[str]
    """State keys read by any hole."""
    variables: frozenset[str]
    """Variables referenced by any hole."""

    def render(self, context: Mapping[str, Any]) -> str:
        """Render: strings as-is, null as "", ``true``/``false``, compact JSON, ``str(number)``.

        Raises:
            ExpressionError: (E007) naming the failing hole.
        """
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                out.append(_stringify(part.evaluate(context)))
            except (ExpressionError, ValueError) as exc:  # ValueError: NaN has no JSON form
                detail = exc.detail if isinstance(exc, ExpressionError) else str(exc)
                message = f"template hole {{{{ {part.source} }}}}: {detail}"
                raise ExpressionError(message, expression=part.source) from exc
        return "".join(out)


def _hole_end(text: str, start: int) -> int:
    """The offset of the ``}}`` closing the hole that starts at ``start``, or -1."""
    depth = 0
    for match in _TOKEN.finditer(text, start):
        if match.group() == "}" and not depth:
            return match.start() if text.startswith("}}", match.start()) else -1
        depth += (match.group() == "{") - (match.group() == "}")
    return -1


@lru_cache(maxsize=256)
def _compile_template(text: str, extra: frozenset[str]) -> Template:
    parts: list[str | Expression] = []
    pos = 0
    while True:
        opening = text.find("{{", pos)
        literal = text[pos:] if opening < 0 else text[pos:opening]
        if "}}" in literal:
            at = pos + literal.index("}}")
            message = f"unbalanced '}}}}' at offset {at}; write {{{{ '}}}}' }}}} for literal braces"
            raise ExpressionCompileError(message, expression=text)
        parts += [literal] if literal else []
        if opening < 0:
            break
        if (end := _hole_end(text, opening + 2)) < 0:
            raise ExpressionCompileError(f"unclosed '{{{{' at offset {opening}", expression=text)
        hole = text[opening + 2 : end].strip()
        try:
            parts.append(_compile(hole, extra))
        except ExpressionCompileError as exc:
            message = f"template hole {{{{ {hole} }}}}: {exc.message}"
            raise ExpressionCompileError(message, expression=hole) from exc
        pos = end + 2
    holes = [part for part in parts if isinstance(part, Expression)]
    return Template(
        source=text,
        parts=tuple(parts),
        state_keys=frozenset().union(*(hole.state_keys for hole in holes)),
        variables=frozenset().union(*(hole.variables for hole in holes)),
    )


def compile_template(text: str, *, extra_variables: Collection[str] = ()) -> Template:
    """Compile text with ``{{ CEL }}`` holes; results are cached.

    A literal ``{{`` or ``}}`` is written as a hole holding a string: ``{{ "{{" }}``.

    Args:
        text: The template, at most ``MAX_TEMPLATE_CHARS`` characters.
        extra_variables: As for :func:`compile_expression`.

    Returns:
        The compiled template.

    Raises:
        ExpressionCompileError: (E001) for unbalanced braces, a bad hole, or a text too long.
    """
    if not isinstance(text, str) or len(text) > MAX_TEMPLATE_CHARS:
        problem = "is over" if isinstance(text, str) else "must be a string of at most"
        message = f"a template {problem} {MAX_TEMPLATE_CHARS} characters"
        raise ExpressionCompileError(message, expression=str(text)[:200])
    return _compile_template(text, _extra(extra_variables))
