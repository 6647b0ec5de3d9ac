"""The fast lane of the expression DSL: one field or literal, or two joined by one operator.

Most expressions in real workflows are of this shape: ``state.count + 1``,
``state.count < 1000``, ``state.route == "billing"``, ``input.text``. The ``cel`` binding
evaluates them in ~3 µs in a tight loop, but ~30 µs inside a run step, where its code and data
are cold, and a step evaluates one or two of them. The lane computes such an expression in
Python, on the same variables (the JSON view the binding would get), when its operands have
types it treats exactly as CEL does: ``int`` with ``int`` (64-bit, so a result out of range is
CEL's overflow error), ``string`` with ``string``, ``bool`` with ``bool`` for ``==``/``!=``.
For anything else (a missing key, ``null``, a ``double``, mixed types, an overflow) it answers
:data:`MISS`, and the binding evaluates the expression as always: every error, and every result
the lane does not know how to compute, still comes from CEL.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from graph_runtime._expression_syntax import _I64, _tokens, _unquote

__all__ = ["MISS", "FastPath", "fast_path"]

MISS: Final[Any] = object()
"""What a fast path returns when the binding has to evaluate the expression."""

FastPath = Callable[[Mapping[str, Any]], Any]
"""``path(env)``: the expression's value, or :data:`MISS`."""

_LOW, _HIGH = _I64
_ARITHMETIC: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EQUALITY: dict[str, Callable[[Any, Any], bool]] = {"==": operator.eq, "!=": operator.ne}
_Operand = Callable[[Mapping[str, Any]], Any]


def fast_path(source: str, variables: frozenset[str]) -> FastPath | None:
    """A fast path for ``source`` if it has the lane's shape, else ``None``.

    ``variables``: the names an expression may read (the lane reads nothing else).
    """
    toks = _tokens(source)
    split = next((i for i, t in enumerate(toks) if t[0] == "op" and t[1] != "."), None)
    if split is None:
        operand = _operand(toks, variables)
        return None if operand is None else _alone(operand)
    op = toks[split][1]
    left, right = _operand(toks[:split], variables), _operand(toks[split + 1 :], variables)
    if left is None or right is None:
        return None
    if op in _ARITHMETIC:
        return _arithmetic(left, right, _ARITHMETIC[op], concat=op == "+")
    if op in _ORDER:
        return _compare(left, right, _ORDER[op], ordered=True)
    if op in _EQUALITY:
        return _compare(left, right, _EQUALITY[op], ordered=False)
    return None


def _kind(value: Any) -> type | None:
    """``int``, ``str`` or ``bool`` if CEL takes ``value`` as such unchanged, else ``None``.

    An int must fit CEL's 64 bits, and a string must be valid Unicode (a lone surrogate is
    refused by the binding): a context that is not a JSON view may hold either.
    """
    kind = type(value)
    if kind is int:
        return int if _LOW <= value <= _HIGH else None
    if kind is str:
        return str if value.isascii() or _encodes(value) else None
    return bool if kind is bool else None


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _operand(toks: list[tuple[str, str, int]], variables: frozenset[str]) -> _Operand | None:
    kinds = [t[0] for t in toks]
    if kinds == ["num"] and toks[0][1].isdigit():
        value = int(toks[0][1])
        return None if value > _HIGH else lambda env: value
    if kinds == ["str"] and toks[0][1][:1] in "'\"" and toks[0][1][:3] not in ('"""', "'''"):
        text = _unquote(toks[0][1])
        return None if text is None else lambda env: text
    if kinds == ["id"] and toks[0][1] in variables:
        name = toks[0][1]
        return lambda env: env.get(name, MISS)
    if kinds == ["id", "op", "id"] and toks[1][1] == "." and toks[0][1] in variables:
        name, key = toks[0][1], toks[2][1]

        def field(env: Mapping[str, Any]) -> Any:
            holder = env.get(name)
            return holder.get(key, MISS) if type(holder) is dict else MISS

        return field
    return None


def _alone(operand: _Operand) -> FastPath:
    def path(env: Mapping[str, Any]) -> Any:
        value = operand(env)
        return value if _kind(value) is not None else MISS

    return path


def _arithmetic(
    left: _Operand, right: _Operand, op: Callable[[Any, Any], Any], *, concat: bool
) -> FastPath:
    def path(env: Mapping[str, Any]) -> Any:
        a, b = left(env), right(env)
        if type(a) is int and type(b) is int:
            # The common case without the two _kind calls (a bool's type is not int).
            if _LOW <= a <= _HIGH and _LOW <= b <= _HIGH:
                value = op(a, b)
                return value if _LOW <= value <= _HIGH else MISS  # CEL: overflow error
            return MISS
        kind = _kind(a)
        if kind is not _kind(b):
            return MISS
        if kind is int:
            value = op(a, b)
            return value if _LOW <= value <= _HIGH else MISS  # CEL: overflow error
        if concat and kind is str:
            return a + b
        return MISS

    return path


def _compare(
    left: _Operand, right: _Operand, op: Callable[[Any, Any], bool], *, ordered: bool
) -> FastPath:
    def path(env: Mapping[str, Any]) -> Any:
        a, b = left(env), right(env)
        if type(a) is int and type(b) is int:
            # The common case without the two _kind calls (a bool's type is not int).
            return op(a, b) if _LOW <= a <= _HIGH and _LOW <= b <= _HIGH else MISS
        kind = _kind(a)
        if kind is None or kind is not _kind(b) or (ordered and kind is bool):
            return MISS
        return op(a, b)

    return path
