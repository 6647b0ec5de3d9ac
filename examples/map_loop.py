"""Map and loop, written with the builder: ``python examples/map_loop.py`` prints map_loop.json.

input → map (one template step per item, appending to ``lines``) → a loop that counts up to
``rounds`` with a transform, capped by ``max_iterations`` → output.
"""

from __future__ import annotations

from graph_runtime.sdk import Workflow

#: The loop's cap; a larger ``rounds`` takes the ``exhausted`` branch at this count.
MAX_ROUNDS = 5

INPUT_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
        "rounds": {"type": "integer", "minimum": 0, "maximum": 10},
    },
}


def build() -> Workflow:
    """The map-and-loop workflow."""
    return (
        Workflow(
            "map-loop",
            name="Map and loop",
            description=(
                "Shout every item in parallel, then count up to `rounds` in a bounded loop."
            ),
        )
        .state("items", type="array", default=[], items={"type": "string"})
        .state("rounds", type="integer", default=0)
        .state("lines", type="array", reducer="append", default=[], items={"type": "string"})
        .state("count", type="integer", default=0)
        .node("start", "input", schema=INPUT_SCHEMA)
        .node("each", "map", items="state.items", as_="word", node="shout", max_items=20)
        .node("shout", "template", template="{{ index + 1 }}. {{ upper(word) }}", output="lines")
        .node("again", "loop", while_="state.count < state.rounds", max_iterations=MAX_ROUNDS)
        .node("bump", "transform", set={"count": "state.count + 1"})
        .node(
            "result",
            "output",
            select={
                "lines": "state.lines",
                "count": "state.count",
                "summary": "join(state.lines, ' | ')",
            },
        )
        .edge("__start__", "start")
        .edge("start", "each")
        .edge("shout", "again")
        .edge("again", "bump", branch="continue")
        .edge("bump", "again")
        .edge("again", "result", branch="done")
        .edge("again", "result", branch="exhausted")
        .edge("result", "__end__")
    )


if __name__ == "__main__":
    print(build().to_json())
