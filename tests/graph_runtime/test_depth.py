"""Nesting depth of inputs and answers: measured without recursion, refused with a pointer."""

from __future__ import annotations

from typing import Any

import pytest

from graph_runtime._depth import MAX_VALUE_DEPTH, check_depth, too_deep
from graph_runtime.errors import InputValidationError


def nested(levels: int, key: str = "a") -> Any:
    value: Any = {}
    for _ in range(levels - 1):
        value = {key: value}
    return value


def test_depth_counts_objects_and_arrays_and_ignores_scalars() -> None:
    assert too_deep(1, 0) is None and too_deep("x" * 10_000, 0) is None
    assert too_deep({"a": [1, {"b": []}]}, 4) is None
    assert too_deep({"a": [1, {"b": []}]}, 3) == "/a/1/b"
    assert too_deep([], 0) == "/"


def test_a_huge_depth_is_measured_without_recursion() -> None:
    assert too_deep(nested(200_000), MAX_VALUE_DEPTH) == "/a" * MAX_VALUE_DEPTH


def test_check_depth_refuses_with_an_escaped_pointer() -> None:
    check_depth(nested(MAX_VALUE_DEPTH), "the input")
    with pytest.raises(InputValidationError) as info:
        check_depth(nested(MAX_VALUE_DEPTH + 1, key="a/b~c"), "the input")
    [problem] = info.value.problems
    assert problem.path == "/a~1b~0c" * MAX_VALUE_DEPTH
    assert "the input nests deeper than" in info.value.message
