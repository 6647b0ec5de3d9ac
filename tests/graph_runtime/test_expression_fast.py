"""The expression fast lane gives CEL's answer, or leaves the expression to CEL."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from graph_runtime._expression_fast import MISS, fast_path
from graph_runtime.errors import ExpressionError
from graph_runtime.expressions import Scope, compile_expression

OPERANDS = [
    "state.a",
    "state.b",
    "state.missing",
    "input.x",
    "item",
    "0",
    "7",
    "9223372036854775807",
    "'hi'",
    '"Ü"',
    "'a\\n'",
    "1.5",
    "true",
    "null",
    "1u",
    "state.a.b",
]
OPERATORS = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||"]
VALUES: list[Any] = [0, 1, -1, 2**62, 2**63 - 1, -(2**63), "hi", "", "Ü", "hj"]
VALUES += [True, False, None, 1.5, 2.0, [1], {"b": 1}, 2**70, "\ud800", "\u00fc"]
VARIABLES = frozenset({"state", "input", "item"})


def _sources() -> list[str]:
    pairs = itertools.product(OPERANDS, OPERATORS, OPERANDS)
    return OPERANDS + [f"{left} {op} {right}" for left, op, right in pairs]


def _by_cel(source: str, env: dict[str, Any]) -> tuple[str, Any]:
    plan = compile_expression(source, extra_variables=["item"])._plan
    env = {name: env[name] for name in plan.names if name in env}  # as evaluate() passes it
    if plan.narrow_state is not None and "state" in env:
        env["state"] = {k: v for k, v in env["state"].items() if k in plan.narrow_state}
    try:
        return "ok", plan.program.execute(env)
    except Exception:
        return "error", None


def _by_runtime(source: str, env: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", compile_expression(source, extra_variables=["item"]).evaluate(env)
    except ExpressionError:
        return "error", None


def test_the_lane_agrees_with_cel_on_every_shape_it_takes() -> None:
    rng = random.Random(7)
    taken = 0
    for source in _sources():
        expression = compile_expression(source, extra_variables=["item"])
        if expression._plan.fast is None:
            continue
        taken += 1
        for _ in range(30):
            env = {
                "state": {"a": rng.choice(VALUES), "b": rng.choice(VALUES)},
                "input": {"x": rng.choice(VALUES)},
                "item": rng.choice(VALUES),
            }
            if rng.random() < 0.2:
                del env["state"]["a"]
            expected, got = _by_cel(source, env), _by_runtime(source, env)
            assert got == expected, (source, env)
            assert type(got[1]) is type(expected[1]), (source, env)
    assert taken > 500  # the lane takes a good part of these shapes


@pytest.mark.parametrize(
    ("source", "env", "value"),
    [
        ("state.count + 1", {"state": {"count": 41}}, 42),
        ("state.count < 1000", {"state": {"count": 999}}, True),
        ("state.route == 'billing'", {"state": {"route": "billing"}}, True),
        ("state.route != 'billing'", {"state": {"route": "sales"}}, True),
        ("state.a + state.b", {"state": {"a": "x", "b": "y"}}, "xy"),
        ("input.text", {"input": {"text": "hi"}}, "hi"),
        ("state.flag == true", {"state": {"flag": True}}, None),  # `true` is left to CEL
    ],
)
def test_common_shapes(source: str, env: dict[str, Any], value: Any) -> None:
    path = fast_path(source, VARIABLES)
    if value is None:
        assert path is None
        return
    assert path is not None
    assert path(env) == value


@pytest.mark.parametrize(
    ("source", "env"),
    [
        ("state.count + 1", {"state": {"count": 2**63 - 1}}),  # CEL's overflow error
        ("state.count * 2", {"state": {"count": -(2**62) - 1}}),
        ("state.count + 1", {"state": {}}),  # no such key
        ("state.count + 1", {"state": {"count": 1.5}}),  # double + int: no overload
        ("state.count + 1", {"state": {"count": True}}),  # a bool is not an int in CEL
        ("state.count < 'a'", {"state": {"count": 1}}),
        ("state.s - state.s", {"state": {"s": "x"}}),
        ("item", {}),  # undeclared here
        ("state.a", {"state": {"a": {"b": 1}}}),  # CEL's maps come back sorted
        ("state.a", {"state": {"a": 2**64}}),  # not a 64-bit int: the binding decides
        ("state.a == 'x'", {"state": {"a": "\ud800"}}),  # refused by the binding
        ("state.a < state.b", {"state": {"a": True, "b": False}}),
    ],
)
def test_what_the_lane_leaves_to_cel(source: str, env: dict[str, Any]) -> None:
    path = fast_path(source, VARIABLES)
    assert path is not None
    assert path(env) is MISS


@pytest.mark.parametrize(
    "source",
    ["state.a + state.b + 1", "-1", "(state.a)", "size(state.a)", "state.a[0]", "1.0", "b'x'"],
)
def test_other_shapes_have_no_fast_path(source: str) -> None:
    assert fast_path(source, VARIABLES) is None


def test_errors_still_come_from_cel() -> None:
    expression = compile_expression("state.count + 1")
    with pytest.raises(ExpressionError, match="overflow"):
        expression.evaluate(Scope({"count": 2**63 - 1}))
    with pytest.raises(ExpressionError):
        expression.evaluate(Scope({}))
    assert expression.evaluate(Scope({"count": 1, "other": object()})) == 2


def test_the_state_lane_reads_the_raw_state_as_its_view_would() -> None:
    # On LangGraph's state as it is (private keys, unconverted values), the state lane
    # gives what evaluate() gives on the public state's view, or leaves it to evaluate().
    rng = random.Random(11)
    taken = 0
    for source in _sources():
        expression = compile_expression(source, extra_variables=["item"])
        lane = expression.state_lane
        if lane is None:
            continue
        taken += 1
        assert expression.variables == {"state"}
        for _ in range(20):
            state = {"a": rng.choice(VALUES), "b": rng.choice(VALUES), "__input__": {"a": 1}}
            if rng.random() < 0.2:
                del state["a"]
            got = lane({"state": state})
            if got is MISS:
                continue
            public = {k: v for k, v in state.items() if not k.startswith("__")}
            assert _by_runtime(source, {"state": public}) == ("ok", got), (source, state)
    assert taken > 100


@pytest.mark.parametrize(
    "source",
    ["state.count + input.n", "item + 1", "run.attempt", "state", "size(state.a) > 1"],
)
def test_no_state_lane_for_what_reads_more_than_public_state_keys(source: str) -> None:
    # (A private key is no question: `state.__input__` does not compile.)
    assert compile_expression(source, extra_variables=["item"]).state_lane is None
