"""How deep a JSON value nests: inputs and answers deeper than expressions can see are refused.

A run's input and a resume value become state that CEL expressions read, that the checkpointer
serialises and that the API returns; each of those stops at some nesting depth (the expression
view at :data:`~graph_runtime._expression_limits.MAX_VIEW_DEPTH`, msgpack a little later,
Python's recursion limit beyond). A value nested deeper is refused up front with E001 and the
JSON pointer of the first level too deep, instead of failing the run later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graph_runtime._expression_limits import MAX_VIEW_DEPTH
from graph_runtime.errors import InputValidationError, Problem

__all__ = ["MAX_VALUE_DEPTH", "check_depth", "too_deep"]

MAX_VALUE_DEPTH = MAX_VIEW_DEPTH
"""Most levels of objects and arrays in a run's input or a resume value (the value itself is 1)."""


def too_deep(value: Any, limit: int = MAX_VALUE_DEPTH) -> str | None:
    """The JSON pointer of the first object or array nested past ``limit`` levels, or None.

    Iterative, so any depth is measured without recursion.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, level, path = stack.pop()
        if isinstance(item, Mapping):
            children = ((str(k), v) for k, v in item.items())
        elif isinstance(item, list | tuple):
            children = ((str(i), v) for i, v in enumerate(item))
        else:
            continue
        if level > limit:
            return path or "/"
        for key, child in children:
            if isinstance(child, Mapping | list | tuple):
                escaped = key.replace("~", "~0").replace("/", "~1")
                stack.append((child, level + 1, f"{path}/{escaped}"))
    return None


def check_depth(value: Any, what: str, root: str = "") -> None:
    """Raise E001 if ``value`` nests deeper than :data:`MAX_VALUE_DEPTH`.

    Args:
        value: The input or answer.
        what: What it is, for the message ("the input", "the resume value").
        root: JSON pointer prefix of the value in the request (e.g. ``/input_data``).

    Raises:
        InputValidationError: with the pointer of the first level too deep.
    """
    where = too_deep(value)
    if where is None:
        return
    path = root + ("" if where == "/" else where) or "/"
    message = f"{what} nests deeper than {MAX_VALUE_DEPTH} levels of objects and arrays"
    raise InputValidationError(
        f"{message} (at {path})", problems=[Problem(path=path, message=message)]
    )
