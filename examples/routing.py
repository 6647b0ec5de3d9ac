"""Ticket routing, written with the builder: ``python examples/routing.py`` prints routing.json.

input (JSON Schema) → normalise → condition (refund / bug / question) → a transform and a
template per branch → one of two output nodes.
"""

from __future__ import annotations

from graph_runtime.sdk import Workflow

#: Every reply greets the customer by name, or "there" when the input had none.
HELLO = "Hi {{ default(state.customer, 'there') }}"

TICKET_SCHEMA = {
    "type": "object",
    "required": ["ticket"],
    "properties": {
        "ticket": {"type": "string", "minLength": 1, "maxLength": 2000},
        "customer": {"type": "string"},
    },
    "additionalProperties": False,
}


def build() -> Workflow:
    """The routing workflow."""
    return (
        Workflow(
            "routing",
            name="Ticket routing",
            description=(
                "Route a support ticket to billing, engineering or the FAQ desk by its "
                "wording, tag it and draft a reply."
            ),
        )
        .settings(recursion_limit=25)
        .state("ticket", type="string", description="The ticket as the customer wrote it.")
        .state("customer", type=["string", "null"], default=None)
        .state("text", type="string", default="", description="The ticket, trimmed and lowercased.")
        .state("queue", type="string", default="general")
        .state("tags", type="array", reducer="append", default=[], items={"type": "string"})
        .state("reply", type="string", default="")
        .node("start", "input", schema=TICKET_SCHEMA)
        .node("normalise", "transform", set={"text": "lower(trim(state.ticket))"})
        .node(
            "route",
            "condition",
            branches=[
                {
                    "name": "refund",
                    "when": "state.text.contains('refund') || state.text.contains('money back')",
                },
                {
                    "name": "bug",
                    "when": "state.text.contains('error') || state.text.contains('crash')",
                },
            ],
            default="question",
        )
        .node("refund", "transform", set={"queue": "'billing'", "tags": "['refund', 'priority']"})
        .node(
            "refund_reply",
            "template",
            template=HELLO + ", billing has your refund request ({{ join(state.tags, ', ') }}).",
            output="reply",
        )
        .node("bug", "transform", set={"queue": "'engineering'", "tags": "['bug']"})
        .node(
            "bug_reply",
            "template",
            template=HELLO + ", engineering is looking into it ({{ join(state.tags, ', ') }}).",
            output="reply",
        )
        .node(
            "question_reply",
            "template",
            template=HELLO + ", thanks for asking; the FAQ desk answers within a day.",
            output="reply",
        )
        .node(
            "result",
            "output",
            select={"queue": "state.queue", "tags": "state.tags", "reply": "state.reply"},
        )
        .node("answer", "output", select={"queue": "state.queue", "reply": "state.reply"})
        .edge("__start__", "start")
        .edge("start", "normalise")
        .edge("normalise", "route")
        .edge("route", "refund", branch="refund")
        .edge("route", "bug", branch="bug")
        .edge("route", "question_reply", branch="question")
        .edge("refund", "refund_reply")
        .edge("bug", "bug_reply")
        .edge("refund_reply", "result")
        .edge("bug_reply", "result")
        .edge("question_reply", "answer")
        .edge("result", "__end__")
        .edge("answer", "__end__")
    )


if __name__ == "__main__":
    print(build().to_json())
