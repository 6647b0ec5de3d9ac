from __future__ import annotations

import copy
import json
import random
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from graph_runtime.errors import Problem, WorkflowValidationError
from graph_runtime.models import ErrorCode
from graph_runtime.schema import WorkflowDefinition, parse_workflow
from graph_runtime.validation import check_workflow, load_workflow
from nodes.base import BaseNode
from nodes.registry import NodeRegistry

Doc = dict[str, Any]


# --- document builders ------------------------------------------------------------------


def node(node_id: str, node_type: str, **config: Any) -> Doc:
    return {"id": node_id, "type": node_type, "config": config}


def transform(node_id: str, **values: str) -> Doc:
    return node(node_id, "transform", set=values or {"x": "1"})


def output(node_id: str = "result") -> Doc:
    return node(node_id, "output", select={"x": "state.x"})


def minimal() -> Doc:
    """input -> work -> result, implicit entry and finish, inferred state."""
    return {
        "nodes": [node("start", "input"), transform("work"), output()],
        "edges": [{"from": "start", "to": "work"}, {"from": "work", "to": "result"}],
    }


def full_document() -> Doc:
    """WORKFLOW.md §1.1 rebuilt from the core node types only."""
    return {
        "schema": "graph-runtime/workflow/v1",
        "id": "support-triage",
        "name": "Support ticket triage",
        "description": "Classify, gather context, draft, self-review, answer.",
        "settings": {
            "recursion_limit": 60,
            "timeout_seconds": 900,
            "durability": "async",
            "max_concurrency": 8,
            "expected_steps": 12,
            "breakpoints": {"before": ["compose"]},
        },
        "defaults": {
            "retry": {
                "max_attempts": 3,
                "initial_interval": 0.5,
                "backoff_factor": 2.0,
                "max_interval": 30,
                "jitter": True,
                "retry_on": ["E002", "E003"],
            },
            "timeout": {"run": 120},
        },
        "state": {
            "ticket": {"type": "string"},
            "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
            "triage": {"type": "object", "reducer": "merge", "default": {}},
            "kb": {"type": "object", "default": {}},
            "orders": {"type": "array", "default": []},
            "checks": {"type": "array", "reducer": "append", "default": []},
            "attempts": {"type": "integer", "reducer": "add", "default": 0},
            "draft": {"type": "string"},
            "review": {"type": "object", "default": {"ok": False}},
            "reply": {"type": "string"},
        },
        "nodes": [
            {
                "id": "start",
                "type": "input",
                "config": {
                    "schema": {
                        "type": "object",
                        "required": ["ticket"],
                        "properties": {
                            "ticket": {"type": "string", "minLength": 1},
                            "tier": {"type": "string"},
                        },
                    }
                },
                "ui": {"x": 0, "y": 0},
            },
            transform(
                "classify",
                triage="{'category': state.ticket.contains('refund') ? 'refund' : 'question', "
                "'urgency': size(state.ticket) > 100 ? 5 : 1}",
            ),
            {
                **transform("kb_search", kb="{'summary': 'KB for ' + state.tier}"),
                "timeout": 10,
                "on_error": {"action": "continue", "update": {"kb": {"summary": "KB unavailable"}}},
            },
            node(
                "route",
                "condition",
                branches=[
                    {"name": "refund", "when": "state.triage.category == 'refund'"},
                    {
                        "name": "escalate",
                        "when": "state.triage.urgency >= 4 && state.tier == 'pro'",
                    },
                ],
                default="answer",
            ),
            transform("fetch_orders", orders="[{'id': 1}, {'id': 2}]"),
            node("check_each", "map", items="state.orders", node="check_order", max_items=50),
            {**transform("check_order", checks="[{'order': item.id, 'index': index}]")},
            node(
                "write",
                "template",
                template="Ticket: {{ state.ticket }}\nKB: {{ state.kb.summary }}\n"
                "Checks: {{ size(state.checks) }}",
                output="draft",
            ),
            transform("critique", review="{'ok': size(state.draft) > 0}", attempts="1"),
            node("revise", "loop", **{"while": "!state.review.ok", "max_iterations": 3}),
            node("cool_down", "wait", seconds=0),
            node(
                "compose",
                "template",
                template="Hi,\n\n{{ state.draft }}\n\nSupport team",
                output="reply",
            ),
            node(
                "result",
                "output",
                select={"reply": "state.reply", "category": "state.triage.category"},
            ),
            node("escalated", "output", select={"escalated": "true", "ticket": "state.ticket"}),
        ],
        "edges": [
            {"from": "__start__", "to": "start"},
            {"from": "start", "to": ["classify", "kb_search"]},
            {"from": ["classify", "kb_search"], "to": "route"},
            {"from": "route", "branch": "refund", "to": "fetch_orders"},
            {"from": "route", "branch": "escalate", "to": "escalated"},
            {"from": "route", "branch": "answer", "to": "write"},
            {"from": "fetch_orders", "to": "check_each"},
            {"from": "check_order", "to": "write"},
            {"from": "write", "to": "critique"},
            {"from": "critique", "to": "revise"},
            {"from": "revise", "branch": "continue", "to": "write"},
            {"from": "revise", "branch": "done", "to": "cool_down"},
            {"from": "cool_down", "to": "compose"},
            {"from": "compose", "to": "result"},
            {"from": "result", "to": "__end__"},
        ],
        "finish": "escalated",
    }


def _declared(**state: Any) -> Doc:
    doc = minimal()
    doc["state"] = {"x": {}, **state}
    return doc


def _cond(default_edge: bool = True) -> Doc:
    doc = minimal()
    branches = [{"name": "a", "when": "true"}, {"name": "b", "when": "false"}]
    doc["nodes"][1] = node("work", "condition", branches=branches)
    doc["edges"][1] = {"from": "work", "branch": "a", "to": "result"}
    doc["edges"].append({"from": "work", "branch": "b", "to": "result"})
    if default_edge:
        doc["edges"].append({"from": "work", "branch": "default", "to": "result"})
    return doc


def _loop(*branches: str) -> Doc:
    doc = minimal()
    doc["nodes"].insert(2, node("again", "loop", **{"while": "state.x < 3", "max_iterations": 2}))
    doc["edges"][1] = {"from": "work", "to": "again"}
    for b in branches:
        target = "work" if b == "continue" else "result"
        doc["edges"].append({"from": "again", "branch": b, "to": target})
    return doc


DELETE = object()


def patched(*changes: tuple[str, Any], base: Doc | None = None) -> Doc:
    """``minimal()`` (or ``base``) with values set at JSON pointers; ``-`` appends to a list."""
    doc = copy.deepcopy(base if base is not None else minimal())
    for ptr, value in changes:
        *parents, last = ptr[1:].split("/")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list) and last == "-":
            target.append(value)
        elif value is DELETE:
            del target[int(last) if isinstance(target, list) else last]
        else:
            target[int(last) if isinstance(target, list) else last] = value
    return doc


def check(document: Doc, **kwargs: Any) -> list[Problem]:
    registry = kwargs.pop("registry", None)
    definition = parse_workflow(document, registry=registry)
    return check_workflow(definition, registry=registry, **kwargs)


def load_problems(document: Doc | str | bytes, **kwargs: Any) -> list[Problem]:
    with pytest.raises(WorkflowValidationError) as info:
        load_workflow(document, **kwargs)
    return info.value.problems


def find(problems: list[Problem], path: str, severity: str = "error") -> Problem:
    matches = [p for p in problems if p.path == path and p.severity == severity]
    assert matches, f"no {severity} at {path}; got {[str(p) for p in problems]}"
    assert all(p.code is ErrorCode.VALIDATION_ERROR for p in matches)
    return matches[0]


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


# --- valid documents --------------------------------------------------------------------


def test_full_document_is_valid() -> None:
    definition = load_workflow(full_document())
    assert check_workflow(definition) == []


def test_minimal_document_with_implicit_entry_and_finish() -> None:
    definition = load_workflow(minimal(), workflow_id="mini")
    assert definition.id == "mini"
    assert check_workflow(definition) == []


def test_dify_spelling_loads() -> None:
    doc = {
        "nodes": [
            node("start", "input"),
            node(
                "route",
                "condition",
                branches=[{"name": "yes", "when": "input.x == 1"}],
                default="no",
            ),
            output("a"),
            output("b"),
        ],
        "edges": [
            {"id": "e0", "source": "start", "target": "route", "targetHandle": "target"},
            {"id": "e1", "source": "route", "sourceHandle": "yes", "target": "a"},
            {"id": "e2", "source": "route", "sourceHandle": "no", "target": "b"},
        ],
    }
    assert check(doc) == []
    doc["edges"][2]["target"] = "bb"
    problem = find(load_problems(doc), "/edges/2/target")
    assert problem.message == "edge 2 goes to 'bb', which is not a node; did you mean 'b'?"
    doc["edges"][2] = {"source": "route", "sourceHandle": "maybe", "target": "b"}
    find(load_problems(doc), "/edges/2/sourceHandle")


def test_warnings_do_not_raise() -> None:
    doc = minimal()
    doc["edges"][1] = {"from": "work", "to": "work", "when": "state.x < 3"}
    doc["edges"].append({"from": "work", "to": "result", "else": True})
    definition = load_workflow(doc)
    [warning] = check_workflow(definition)
    assert (warning.path, warning.severity) == ("/nodes/1", "warning")


# --- rules 1-3 (schema.py) --------------------------------------------------------------


SHAPE_CASES: list[tuple[str, Doc, str, str]] = [
    ("unknown-field", patched(("/bogus", 1)), "/bogus", "unknown field 'bogus'"),
    ("unknown-schema", patched(("/schema", "graph-runtime/workflow/v9")), "/schema", "unknown"),
    ("wrong-type", patched(("/edges", 5)), "/edges", ""),
    ("node-field", patched(("/nodes/1/colour", "red")), "/nodes/1/colour", "unknown field"),
    ("node-type", patched(("/nodes/1/type", "transfrom")), "/nodes/1/type", "'transform'?"),
    ("missing-config", patched(("/nodes/1/config", {})), "/nodes/1/config/set", "missing"),
    ("config-field", patched(("/nodes/1/config/sett", {})), "/nodes/1/config/sett", "unknown"),
    (
        "retry-on",
        patched(("/nodes/1/retry", {"retry_on": ["E009"]})),
        "/nodes/1/retry/retry_on/0",
        "",
    ),
]


@pytest.mark.parametrize(
    ("document", "path", "fragment"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES]
)
def test_rules_1_to_3_shape(document: Doc, path: str, fragment: str) -> None:
    assert fragment in find(load_problems(document), path).message


def test_rule_3_condition_branch() -> None:
    doc = minimal()
    doc["nodes"][1] = node("work", "condition", branches=[{"name": "a"}])
    find(load_problems(doc), "/nodes/1/config/branches/0/when")


def test_rules_1_to_3_not_json() -> None:
    assert find(load_problems("{nodes"), "").message.startswith("not JSON")
    find(load_problems(b"\xff\xfe"), "")
    find(load_problems("[1, 2]"), "")


def test_rules_2_and_3_on_a_definition_built_without_parse_workflow() -> None:
    doc = minimal()
    doc["nodes"][1] = node("work", "transfrom", set={"x": "1"})
    doc["nodes"].append(node("other", "transform", sett={}))
    problems = check_workflow(WorkflowDefinition.model_validate(doc))
    assert "did you mean 'transform'?" in find(problems, "/nodes/1/type").message
    find(problems, "/nodes/3/config/set")


def test_load_workflow_error_carries_the_warnings_too() -> None:
    doc = minimal()
    doc["state"] = {"x": {"type": "array", "reducer": "append"}}
    doc["nodes"][1]["config"]["set"] = {"x": "[1]", "y": "2"}
    problems = load_problems(doc)
    find(problems, "/nodes/1/config/set/y")
    assert "default" in find(problems, "/state/x", "warning").message


# --- rules 4-21 -------------------------------------------------------------------------


ELSE = {"from": "work", "to": "result", "else": True}
APPEND_XS = {"x": {}, "xs": {"type": "array", "reducer": "append", "default": []}}

# (case id, document, the exact pointer of the expected E001 error)
CASES: list[tuple[str, Doc, str]] = [
    ("4-duplicate-id", patched(("/nodes/-", transform("work"))), "/nodes/3/id"),
    ("5-reserved-start", patched(("/nodes/-", transform("__start__"))), "/nodes/3/id"),
    ("5-reserved-prefix", patched(("/nodes/-", transform("__mine"))), "/nodes/3/id"),
    ("5-colon", patched(("/nodes/-", transform("a:b"))), "/nodes/3/id"),
    ("6-dangling-to", patched(("/edges/1/to", "reslt")), "/edges/1/to"),
    ("6-dangling-from", patched(("/edges/0/from", "strat")), "/edges/0/from"),
    ("6-dangling-list", patched(("/edges/1/to", ["result", "nope"])), "/edges/1/to/1"),
    ("6-to-start", patched(("/edges/1/to", "__start__")), "/edges/1/to"),
    ("6-entry", patched(("/entry", "strat")), "/entry"),
    ("6-finish", patched(("/finish", "reslt")), "/finish"),
    ("6-finish-list", patched(("/finish", ["result", "reslt"])), "/finish/1"),
    ("7-no-entry", patched(("/nodes/0", transform("start", y="1"))), "/entry"),
    ("7-two-inputs", patched(("/nodes/-", node("other", "input"))), "/entry"),
    (
        "8-unreachable",
        patched(
            ("/nodes/-", transform("orphan")), ("/edges/-", {"from": "orphan", "to": "result"})
        ),
        "/nodes/3",
    ),
    ("9-dead-end", patched(("/edges/1", DELETE)), "/nodes/1"),
    ("10-no-finish", patched(("/edges/1", DELETE)), "/nodes/0"),
    ("11-closed-cycle", patched(("/edges/1", {"from": "work", "to": "work"})), "/nodes/1"),
    (
        "12-branch-no-edge",
        patched(("/edges/2", DELETE), base=_cond()),
        "/nodes/1/config/branches/1",
    ),
    ("12-default-no-edge", _cond(default_edge=False), "/nodes/1/config/default"),
    ("12-loop-no-done", _loop("continue"), "/nodes/2"),
    ("12-undeclared-branch", patched(("/edges/2/branch", "c"), base=_cond()), "/edges/2/branch"),
    ("12-branch-on-plain", patched(("/edges/1/branch", "a")), "/edges/1/branch"),
    (
        "12-plain-out-of-condition",
        patched(("/edges/-", {"from": "work", "to": "result"}), base=_cond()),
        "/edges/4",
    ),
    ("12-when-without-else", patched(("/edges/1/when", "state.x > 1")), "/edges/1"),
    (
        "12-mixed",
        patched(("/edges/-", {**ELSE, "else": False, "when": "true"}), ("/edges/-", ELSE)),
        "/edges/2",
    ),
    ("13-parse-error", patched(("/nodes/1/config/set/x", "1 +")), "/nodes/1/config/set/x"),
    (
        "13-unknown-variable",
        patched(("/nodes/1/config/set/x", "order.id")),
        "/nodes/1/config/set/x",
    ),
    ("13-edge-when", patched(("/edges/1/when", "(("), ("/edges/-", ELSE)), "/edges/1/when"),
    (
        "13-template",
        patched(("/nodes/1", node("work", "template", template="{{ x }}", output="x"))),
        "/nodes/1/config/template",
    ),
    (
        "14-read",
        patched(("/nodes/1/config/set/x", "state.y"), base=_declared()),
        "/nodes/1/config/set/x",
    ),
    (
        "14-write",
        patched(("/nodes/1/config/set/y", "1"), base=_declared()),
        "/nodes/1/config/set/y",
    ),
    ("14-private-write", patched(("/nodes/1/config/set/__y", "1")), "/nodes/1/config/set/__y"),
    (
        "14-on-error-update",
        patched(
            ("/nodes/1/on_error", {"action": "continue", "update": {"z": 1}}), base=_declared()
        ),
        "/nodes/1/on_error/update/z",
    ),
    (
        "14-template-read",
        patched(
            ("/nodes/1/config", {"template": "{{ state.y }}", "output": "x"}),
            ("/nodes/1/type", "template"),
            base=_declared(),
        ),
        "/nodes/1/config/template",
    ),
    (
        "14-cache-key",
        patched(("/nodes/1/cache", {"key": ["x", "y"]}), base=_declared()),
        "/nodes/1/cache/key/1",
    ),
    ("15-append-string", _declared(x={"type": "string", "reducer": "append"}), "/state/x/reducer"),
    ("15-merge-array", _declared(x={"type": "array", "reducer": "merge"}), "/state/x/reducer"),
    ("15-add-string", _declared(x={"type": "string", "reducer": "add"}), "/state/x/reducer"),
    (
        "15-messages-object",
        _declared(x={"type": "object", "reducer": "messages"}),
        "/state/x/reducer",
    ),
    (
        "15-parallel-replace",
        patched(
            ("/nodes/-", transform("twin")),
            ("/edges/0/to", ["work", "twin"]),
            ("/edges/-", {"from": "twin", "to": "result"}),
        ),
        "/nodes/3/config/set/x",
    ),
    (
        "16-map-missing-node",
        patched(("/nodes/1", node("work", "map", items="[1, 2]", node="wrok"))),
        "/nodes/1/config/node",
    ),
    (
        "16-map-target-edge",
        patched(
            ("/nodes/-", node("each", "map", items="[1, 2]", node="work")),
            ("/edges/0/to", "each"),
            ("/nodes/1/config/set", {"xs": "[item]"}),
            ("/state", APPEND_XS),
            ("/edges/-", {"from": "start", "to": "work"}),
        ),
        "/edges/2/to",
    ),
    (
        "19-input-schema",
        patched(("/nodes/0/config/schema", {"properties": {"a": {"type": "strin"}}})),
        "/nodes/0/config/schema/properties/a/type",
    ),
    (
        "19-unknown-metaschema",
        patched(("/nodes/0/config/schema", {"$schema": "https://example.com/nope"})),
        "/nodes/0/config/schema/$schema",
    ),
    ("19-state-items", _declared(x={"items": {"minItems": -1}}), "/state/x/items/minItems"),
    (
        "20-max-attempts",
        patched(("/nodes/1/retry", {"max_attempts": 0})),
        "/nodes/1/retry/max_attempts",
    ),
    ("20-timeout-number", patched(("/nodes/1/timeout", 0)), "/nodes/1/timeout"),
    ("20-timeout-idle", patched(("/nodes/1/timeout", {"idle": -1})), "/nodes/1/timeout/idle"),
    (
        "20-default-timeout",
        patched(("/defaults", {"timeout": {"run": 0}})),
        "/defaults/timeout/run",
    ),
    ("20-run-timeout", patched(("/settings", {"timeout_seconds": 0})), "/settings/timeout_seconds"),
    ("20-cache-ttl", patched(("/nodes/1/cache", {"ttl": 0})), "/nodes/1/cache/ttl"),
    (
        "20-recursion-limit",
        patched(("/settings", {"recursion_limit": 2})),
        "/settings/recursion_limit",
    ),
    (
        "20-breakpoint",
        patched(("/settings", {"breakpoints": {"after": ["wrok"]}})),
        "/settings/breakpoints/after/0",
    ),
    (
        "20-on-error-unknown",
        patched(("/nodes/1/on_error", {"action": "route", "to": "nope"})),
        "/nodes/1/on_error/to",
    ),
    (
        "20-on-error-to-without-route",
        patched(("/nodes/1/on_error", {"action": "continue", "to": "result"})),
        "/nodes/1/on_error/to",
    ),
    (
        "20-route-without-to",
        patched(("/nodes/1/on_error", {"action": "route"})),
        "/nodes/1/on_error/action",
    ),
]


@pytest.mark.parametrize(("document", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(document: Doc, path: str) -> None:
    find(check(document), path)
    find(load_problems(document), path)


def test_rule_6_message_suggests() -> None:
    doc = minimal()
    doc["nodes"][1]["id"] = "write"
    doc["edges"][0]["to"] = "write"
    doc["edges"][1] = {"from": "write", "to": "result"}
    doc["edges"].insert(1, {"from": "start", "to": "wirte"})
    assert find(check(doc), "/edges/1/to").message == (
        "edge 1 goes to 'wirte', which is not a node; did you mean 'write'?"
    )


def test_rule_7_two_inputs_says_so() -> None:
    doc = minimal()
    doc["nodes"].append(node("other", "input"))
    assert "2 input nodes" in find(check(doc), "/entry").message


def test_rule_11_cycle_without_loop_is_a_warning_and_with_loop_is_fine() -> None:
    doc = minimal()
    doc["edges"][1] = {"from": "work", "to": "work", "when": "state.x < 3"}
    doc["edges"].append({"from": "work", "to": "result", "else": True})
    assert "recursion_limit" in find(check(doc), "/nodes/1", "warning").message
    assert check(_loop("continue", "done")) == []


def test_rule_12_loop_exhausted_is_optional() -> None:
    assert check(_loop("continue", "done")) == []
    assert check(_loop("continue", "done", "exhausted")) == []


def test_rule_8_an_on_error_route_makes_its_target_reachable() -> None:
    doc = patched(
        ("/nodes/-", transform("fallback", x="0")),
        ("/edges/-", {"from": "fallback", "to": "result"}),
    )
    find(check(doc), "/nodes/3")
    doc["nodes"][1]["on_error"] = {"action": "route", "to": "fallback"}
    assert check(doc) == []


def test_rule_13_example_pointer() -> None:
    doc = minimal()
    doc["nodes"][1:1] = [transform("a"), transform("b"), transform("c")]
    doc["nodes"][4] = node(
        "work",
        "condition",
        branches=[{"name": "one", "when": "true"}, {"name": "two", "when": "state.x >"}],
        default="one",
    )
    doc["edges"] = [
        {"from": "start", "to": "work"},
        {"from": "work", "branch": "one", "to": "result"},
        {"from": "work", "branch": "two", "to": "result"},
    ]
    paths = {p.path for p in errors(check(doc))}
    assert "/nodes/4/config/branches/1/when" in paths


def test_rule_13_map_variables() -> None:
    doc = minimal()
    doc["nodes"][1]["config"]["set"] = {"xs": "[order.id, index]"}
    doc["nodes"].append(node("each", "map", items="[{'id': 1}]", node="work", **{"as": "order"}))
    doc["edges"][0] = {"from": "start", "to": "each"}
    doc["state"] = {"x": {}, "xs": {"type": "array", "reducer": "append", "default": []}}
    assert errors(check(doc)) == []
    doc["nodes"][3]["config"]["as"] = "entry"
    find(check(doc), "/nodes/1/config/set/xs")


def test_rule_15_map_target_writing_a_replace_key() -> None:
    doc = minimal()
    doc["nodes"].append(node("each", "map", items="[1, 2]", node="work"))
    doc["edges"][0] = {"from": "start", "to": "each"}
    assert "once per item" in find(check(doc), "/nodes/1/config/set/x").message


def test_rule_16_join_behind_a_branch_warns() -> None:
    doc = {
        "nodes": [
            node("start", "input"),
            transform("p", p="1"),
            node("c", "condition", branches=[{"name": "yes", "when": "true"}], default="no"),
            transform("q", q="1"),
            transform("j", j="1"),
            output(),
        ],
        "edges": [
            {"from": "start", "to": ["p", "c"]},
            {"from": "c", "branch": "yes", "to": "q"},
            {"from": "c", "branch": "no", "to": "result"},
            {"from": ["p", "q"], "to": "j"},
            {"from": "j", "to": "result"},
        ],
    }
    warning = find(check(doc), "/edges/3/from", "warning")
    assert "defer" in warning.message
    assert errors(check(doc)) == []


def test_rule_16_join_inside_one_branch_is_fine() -> None:
    doc = {
        "nodes": [
            node("start", "input"),
            node("c", "condition", branches=[{"name": "yes", "when": "true"}], default="no"),
            transform("p", p="1"),
            transform("q", q="1"),
            output(),
        ],
        "edges": [
            {"from": "start", "to": "c"},
            {"from": "c", "branch": "yes", "to": ["p", "q"]},
            {"from": "c", "branch": "no", "to": "result"},
            {"from": ["p", "q"], "to": "result"},
        ],
    }
    assert check(doc) == []


def test_rule_21_limits() -> None:
    doc = minimal()
    doc["nodes"] += [transform(f"n{i}") for i in range(500)]
    find(load_problems(doc), "/nodes")
    doc = minimal()
    doc["edges"] += [{"from": "work", "to": "result"}] * 2000
    find(load_problems(doc), "/edges")
    doc = minimal()
    doc["nodes"][1] = node("work", "template", template="x" * 70_000, output="x")
    find(load_problems(doc), "/nodes/1/config/template")


def test_rule_18_top_level_tools() -> None:
    doc = patched(("/tools", ["orders.list"]))
    problem = find(check(doc, tools=["orders.list_recent"]), "/tools/0")
    assert "orders.list_recent" in problem.message
    assert check(doc) == []


# --- node types that are not built in yet, exercised through a private registry ---------


class _AnyConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _Stub(BaseNode[_AnyConfig]):
    type_name: ClassVar[str] = "stub"
    config_model: ClassVar[type[BaseModel]] = _AnyConfig


class _Human(_Stub):
    type_name: ClassVar[str] = "human"

    @classmethod
    def branches(cls, config: Any) -> list[str]:
        return list(getattr(config, "actions", []))


class _Subgraph(_Stub):
    type_name: ClassVar[str] = "subgraph"


def _registry() -> NodeRegistry:
    registry = NodeRegistry()
    for cls in (_Stub, _Human, _Subgraph):
        registry.register(cls, replace=True)
    return registry


def test_rule_20_cache_on_human_and_rule_12_actions() -> None:
    doc = minimal()
    doc["nodes"][1] = {**node("work", "human", actions=["ok", "no"]), "cache": {"ttl": 5}}
    doc["edges"][1] = {"from": "work", "branch": "ok", "to": "result"}
    problems = check(doc, registry=_registry())
    find(problems, "/nodes/1/cache")
    assert "'no'" in find(problems, "/nodes/1/config/actions/1").message


def test_rule_18_models_tools_credentials_on_node_configs() -> None:
    doc = minimal()
    doc["models"] = {"fast": {"provider": "openai"}, "writer": {"ref": "defualt"}}
    doc["nodes"][1] = node("work", "stub", model="slow", tools=["a", "b"], credential="kb")
    kwargs: dict[str, Any] = {"models": ["default"], "tools": ["a"], "credentials": ["kb_api"]}
    problems = check(doc, registry=_registry(), **kwargs)
    assert "did you mean 'default'?" in find(problems, "/models/writer/ref").message
    find(problems, "/nodes/1/config/model")
    find(problems, "/nodes/1/config/tools/1")
    find(problems, "/nodes/1/config/credential")
    doc["nodes"][1]["config"]["model"] = "fast"
    assert "/nodes/1/config/model" not in {
        p.path for p in check(doc, registry=_registry(), **kwargs)
    }


def test_rule_17_subgraph_references() -> None:
    registry = _registry()

    def doc(workflow_id: str, child: str) -> Doc:
        d = minimal()
        d["id"] = workflow_id
        d["nodes"][1] = node("work", "subgraph", workflow=child, version=2)
        return d

    store = {"b": parse_workflow(doc("b", "a"), registry=registry)}

    def resolve(workflow_id: str, version: int | str) -> WorkflowDefinition | None:
        return store.get(workflow_id)

    assert (
        "a -> b -> a"
        in find(
            check(doc("a", "b"), registry=registry, resolve_workflow=resolve),
            "/nodes/1/config/workflow",
        ).message
    )
    find(
        check(doc("a", "zz"), registry=registry, resolve_workflow=resolve),
        "/nodes/1/config/workflow",
    )
    store["b"] = parse_workflow(doc("b", "c"), registry=registry)
    assert check(doc("a", "b"), registry=registry, resolve_workflow=resolve) == []


# --- all at once, and never anything but WorkflowValidationError -------------------------


def test_many_problems_at_once() -> None:
    doc = full_document()
    doc["nodes"][1]["config"]["set"]["triage"] = "state.tickt +"
    doc["nodes"][3]["config"]["branches"][1]["when"] = "state.nope"
    doc["edges"][8]["to"] = "critiqe"
    doc["nodes"].append(transform("classify", triage="{}"))
    doc["settings"]["recursion_limit"] = 3
    doc["state"]["checks"]["type"] = "string"
    problems = load_problems(doc)
    paths = {p.path for p in errors(problems)}
    assert {
        "/nodes/1/config/set/triage",
        "/nodes/3/config/branches/1/when",
        "/edges/8/to",
        "/nodes/14/id",
        "/settings/recursion_limit",
        "/state/checks/reducer",
    } <= paths


_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    True,
    "",
    "x",
    "__start__",
    "__end__",
    "start",
    "work",
    "result",
    "state.x",
    "((",
    "{{ state.",
    "a:b",
    [],
    [1],
    ["start", "nope"],
    {},
    {"x": "1"},
    {"name": "a", "when": "1"},
    "E009",
    "loop",
    "map",
    "condition",
    "input",
    {"type": "strin"},
    10**20,
    "state.__x",
    "x" * 5000,
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _mutate(doc: Doc, rng: random.Random) -> Doc:
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 4)):
        if not doc:
            break
        path = rng.choice(_paths(doc)[1:])
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = rng.random()
        if action < 0.25:
            del parent[key]
        elif action < 0.35 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif action < 0.45 and isinstance(parent, dict):
            parent[
                rng.choice(
                    ["id", "to", "from", "branch", "when", "else", "type", "config", "state"]
                )
            ] = rng.choice(_VALUES)
        else:
            parent[key] = copy.deepcopy(rng.choice(_VALUES))
    return doc


_CASE_DOCS = {name: doc for name, doc, _ in CASES}


def test_fuzz_only_raises_workflow_validation_error() -> None:
    rng = random.Random(20240601)
    seeds = [
        full_document(),
        minimal(),
        _cond(),
        _loop("continue", "done"),
        _CASE_DOCS["16-map-target-edge"],
    ]
    internal = ("could not be checked", "not a valid JSON workflow")
    for i in range(400):
        doc = _mutate(rng.choice(seeds), rng)
        data: Any = json.dumps(doc) if i % 5 == 0 else doc
        try:
            load_workflow(data)
        except WorkflowValidationError as exc:
            assert exc.problems
            for p in exc.problems:
                assert isinstance(p.path, str) and p.message
                assert not any(s in p.message for s in internal), (p, doc)
    texts: list[str | bytes] = [
        "",
        "null",
        "[]",
        '{"nodes": []}',
        '{"nodes": [{}]}',
        "{" * 100_000,
        b"\x00",
        "1e999",
    ]
    for text in texts:
        with pytest.raises(WorkflowValidationError):
            load_workflow(text)
