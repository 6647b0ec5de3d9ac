"""Limits and names of the expression DSL, shared by its syntax and evaluation modules."""

from __future__ import annotations

ALLOWED_VARIABLES = frozenset({"state", "input", "run", "item", "index", "result"})
FUNCTIONS = frozenset({"join", "has_tool_calls", "json", "lower", "upper", "trim", "default"})
MAX_SOURCE_BYTES = 4096
MAX_COMPREHENSION_DEPTH = 2
#: Longer lists or maps are refused by ``to_view`` (E007), not capped: a capped list would make
#: ``size()`` and ``exists()`` silently wrong.
MAX_LIST_ITEMS = 10_000
MAX_TEMPLATE_CHARS = 65_536
#: The binding converts data recursively: a 1,000-deep list overflows a 1 MiB thread stack.
MAX_VIEW_DEPTH = 64
#: With these two, parsing and evaluating stay under ~0.5 MiB of stack.
MAX_NESTING = 32
MAX_OPERATOR_CHAIN = 400
#: About 0.1-0.5 s of binding time (see ``_work``).
MAX_EVALUATION_WORK = 2_000_000
