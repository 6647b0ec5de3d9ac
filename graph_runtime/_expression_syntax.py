"""Syntax of the expression DSL: tokens, the scanner behind the static guards, ``default()``.

Split from ``expressions.py``, which owns compiling and evaluating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from graph_runtime._expression_limits import (
    MAX_COMPREHENSION_DEPTH,
    MAX_NESTING,
    MAX_OPERATOR_CHAIN,
)

_CEL_FUNCTIONS = frozenset(
    "size int uint double string bytes timestamp duration dyn type contains startsWith endsWith "
    "matches getFullYear getMonth getDayOfYear getDayOfMonth getDate getDayOfWeek getHours "
    "getMinutes getSeconds getMilliseconds".split()
)
_TYPE_NAMES = frozenset("int uint double string bytes bool list map null_type type".split())
_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one"})
_ACCUMULATING = frozenset({"map", "filter"})
_CHAIN_OPS = frozenset("+ - * / % == != < <= > >= && || ? : . !".split())
_SCALARS = frozenset({str, int, float, bool, type(None)})
_LEAVES = frozenset({str, float, bool, type(None)})  # int is range-checked
_CEL_TYPES: dict[type, str] = {type(None): "null", bool: "bool", int: "int", float: "double"}
_CEL_TYPES |= {str: "string", list: "list", dict: "map"}
_I64 = (-(2**63), 2**63 - 1)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# C0 controls but tab/newline/CR, DEL, and the bidi overrides of "Trojan Source".
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
_Q3, _A3 = '"""', "'''"
_TOKEN = re.compile(
    r"(?P<skip>\s+|//[^\n]*)"
    r"|(?P<str>(?:[rR][bB]?|[bB][rR])"  # raw strings: a backslash escapes nothing
    rf"(?:{_Q3}[\s\S]*?(?:{_Q3}|\Z)|{_A3}[\s\S]*?(?:{_A3}|\Z)|'[^'\n]*'|\"[^\"\n]*\")"
    r"|[bB]?"
    rf"(?:{_Q3}(?:\\[\s\S]|[^\\])*?(?:{_Q3}|\Z)|{_A3}(?:\\[\s\S]|[^\\])*?(?:{_A3}|\Z)"
    r"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"))"
    r"|(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d*\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+|[uU])?)"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||[=!<>]=|[-+*/%<>!?:.,()\[\]{}])"
    r"|(?P<other>[\s\S])"
)

_Token = tuple[str, str, int]  # kind, text, offset


def _tokens(source: str) -> list[_Token]:
    """CEL tokens without blanks and comments; total on any text (strays become ``other``)."""
    found = ((m.lastgroup or "", m.group(), m.start()) for m in _TOKEN.finditer(source))
    return [token for token in found if token[0] != "skip"]


def _unquote(literal: str) -> str | None:
    """The value of a string literal, or None when escapes make it not worth decoding."""
    body = literal.lstrip("rRbB")
    quote = body[:3] if body[:3] in (_Q3, _A3) else body[:1]
    raw = "r" in literal[: len(literal) - len(body)].lower()
    return body[len(quote) : -len(quote)] if raw or "\\" not in body else None


def _matching(toks: list[_Token], start: int) -> tuple[int | None, list[int]]:
    """The index of the bracket closing ``toks[start]``, and of its top-level commas."""
    depth, commas = 0, list[int]()
    for j in range(start, len(toks)):
        text = toks[j][1] if toks[j][0] == "op" else ""
        depth += (text in ("(", "[", "{")) - (text in (")", "]", "}"))
        if depth == 0:
            return j, commas
        if text == "," and depth == 1:
            commas.append(j)
    return None, commas


def _state_key(toks: list[_Token], i: int) -> str | None:
    """The key named right after the ``state`` token at ``i`` (``.k`` or ``["k"]``)."""
    after = [*toks[i + 1 : i + 4], ("", "", 0), ("", "", 0), ("", "", 0)]
    if after[0][1] == "." and after[1][0] == "id" and after[2][1] != "(":
        return after[1][1]
    if after[0][1] == "[" and after[1][0] == "str" and after[2][1] == "]":
        return _unquote(after[1][1])
    return None


@dataclass(slots=True)
class _Scan:
    free: set[str] = field(default_factory=set)
    bound: set[str] = field(default_factory=set)  # comprehension loop variables
    state_keys: set[str] = field(default_factory=set)
    whole_state: bool = False  # `state` is also read other than by a named key
    depth: int = 0  # of nested comprehensions
    accumulates: bool = False  # map/filter, quadratic in the binding
    body_refs: list[tuple[str, str | None]] = field(default_factory=list)  # read in their bodies
    concat: int = 0
    refs: int = 0
    problem: str | None = None


def _scan(source: str) -> _Scan:  # noqa: C901 -- one pass, one branch per kind of token
    toks, scan = _tokens(source), _Scan()
    frames: list[list[Any]] = []  # per open bracket: [macro or "", loop variable, token index]
    chains = [0]  # operators chained per nesting level; a comma starts a sibling

    def problem(message: str) -> None:
        scan.problem = scan.problem or message

    for i, (kind, text, _) in enumerate(toks):
        prev, nxt = toks[i - 1] if i else ("", "", 0), toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "id":
            if text.startswith("__"):
                problem(f"{text!r}: names starting with '__' are not allowed")
            if text == "in":
                chains[-1] += 1
            elif prev[1] == ".":
                if text == "default" and nxt == "(":
                    problem("call default(x, fallback), not x.default(...)")
            elif nxt == "(" or text in ("true", "false", "null"):
                pass
            elif frames and frames[-1][0] and frames[-1][2] == i - 1 and nxt == ",":
                frames[-1][1] = text
                scan.bound.add(text)
            elif not any(frame[1] == text for frame in frames):
                scan.free.add(text)
                scan.refs += 1
                key = _state_key(toks, i) if text == "state" else None
                scan.whole_state |= text == "state" and key is None  # also `state[k]`
                scan.state_keys.update([key] if key is not None else [])
                if any(frame[0] in _ACCUMULATING for frame in frames):
                    scan.body_refs.append((text, key))
        elif kind == "op" and text in ("(", "[", "{"):
            if text == "[" and (prev[0] in ("id", "str", "num") or prev[1] in (")", "]")):
                chains[-1] += 1  # an index, not a list literal
            if text == "{" and prev[0] == "id":  # the binding fails on these only at run time
                problem("message construction (Type{...}) is not supported")
            macro = prev[1] if text == "(" and prev[1] in _MACROS and toks[i - 2][1] == "." else ""
            frames.append([macro, "", i])
            chains.append(0)
            scan.accumulates |= macro in _ACCUMULATING
            scan.depth = max(scan.depth, sum(1 for frame in frames if frame[0]))
            if len(frames) > MAX_NESTING:
                problem(f"nested deeper than {MAX_NESTING} brackets")
        elif kind == "op" and text in (")", "]", "}") and frames:
            frames.pop()
            chains.pop()
        elif text == ",":
            chains[-1] = 0
        elif kind == "op" and text in _CHAIN_OPS:
            chains[-1] += 1
            scan.concat += text == "+"
        if sum(chains) > MAX_OPERATOR_CHAIN:
            problem(f"more than {MAX_OPERATOR_CHAIN} chained operators")
    if scan.depth > MAX_COMPREHENSION_DEPTH:
        problem(
            f"comprehensions (map, filter, all, exists...) nested {scan.depth} deep; "
            f"the limit is {MAX_COMPREHENSION_DEPTH}"
        )
    return scan


def referenced_state_keys(source: str) -> frozenset[str]:
    """The top-level state keys read by name: ``state.a.b`` and ``state["a"]`` give ``"a"``.

    String literals and comments are skipped; a computed key (``state[k]``) cannot be named.
    Any text is accepted, including a template hole.
    """
    return frozenset(_scan(source).state_keys)


def _presence_guard(path: str) -> str | None:
    """A CEL test that every step of a path rooted at a variable exists, or None."""
    toks, clauses, j = _tokens(path), [], 1
    if len(toks) < 3 or toks[0][0] != "id":
        return None
    while j < len(toks):
        prefix = path[: toks[j][2]].strip()
        if toks[j][1] == "." and toks[j + 1 : j + 2] and toks[j + 1][0] == "id":
            if toks[j + 2 : j + 3] and toks[j + 2][1] == "(":
                return None
            clauses.append(f"type({prefix}) == map && '{toks[j + 1][1]}' in {prefix}")
            j += 2
        elif toks[j][1] == "[" and (close := _matching(toks, j))[0] is not None and not close[1]:
            key = path[toks[j][2] + 1 : toks[close[0]][2]].strip()
            clauses.append(
                f"(type({prefix}) == map && ({key}) in {prefix} || type({prefix}) == list"
                f" && type({key}) == int && ({key}) >= 0 && ({key}) < size({prefix}))"
            )
            j = close[0] + 1
        else:
            return None
    return " && ".join(clauses)


def _rewrite_defaults(source: str) -> str:
    """``default(path, b)`` becomes ``(<path exists> && path != null ? path : (b))``.

    Other first arguments keep the ``default`` function, which only replaces a null.
    """
    toks, out, pos, i = _tokens(source), list[str](), 0, 0
    while i < len(toks):
        kind, text, start = toks[i]
        opens = toks[i + 1 : i + 2] and toks[i + 1][1] == "(" and (not i or toks[i - 1][1] != ".")
        if kind != "id" or text != "default" or not opens:
            i += 1
            continue
        close, commas = _matching(toks, i + 1)
        if close is None or len(commas) != 1:
            raise ValueError("default() takes two arguments: default(x, fallback)")
        first = _rewrite_defaults(source[toks[i + 1][2] + 1 : toks[commas[0]][2]]).strip()
        second = _rewrite_defaults(source[toks[commas[0]][2] + 1 : toks[close][2]]).strip()
        guard = _presence_guard(first)
        call = f"(({guard}) && ({first}) != null ? ({first}) : ({second}))" if guard else None
        out += [source[pos:start], call or f"default({first}, {second})"]
        pos, i = toks[close][2] + 1, close + 1
    return "".join(out) + source[pos:]


# -- functions registered with CEL ----------------------------------------------------------
