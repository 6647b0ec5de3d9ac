"""Server-side tools of the support-triage examples (register them with the runtime).

::

    from examples.support_tools import TOOLS
    async with Runtime("runs.db", services={"tools": TOOLS}) as rt: ...

A package can publish the same tools under the ``graph_runtime.tools`` entry point group instead.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import tool

__all__ = ["TOOLS", "refund_status"]


@tool
def refund_status(ticket: str) -> dict[str, Any]:
    """The refund on file for the order a ticket mentions (a stand-in for an orders API)."""
    order = next((w.strip("#.,") for w in ticket.split() if w.strip("#.,").isdigit()), None)
    return {"order": order, "status": "approved" if order else "not found", "amount": 42.0}


#: Registry name → tool, as the documents name them.
TOOLS = {"orders.refund_status": refund_status}
