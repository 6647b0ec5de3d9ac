"""``AgentProtocol``: the assistants, threads and runs services of one app."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from checkpoints.threads import ThreadStore
from graph_runtime.runtime import Runtime
from server.agent_protocol.assistants import Assistants
from server.agent_protocol.background import Background
from server.agent_protocol.runs import Runs
from server.agent_protocol.threads import Threads

__all__ = ["AgentProtocol", "ProtocolDep", "get_protocol"]


class AgentProtocol:
    """The protocol's services around one open ``Runtime``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.assistants = Assistants(runtime)
        self.threads = Threads(runtime, self.assistants, _thread_store(runtime))
        self.runs = Runs(runtime, self.assistants, self.threads)
        self.background = Background(runtime, self.runs)

    async def aclose(self) -> None:
        """Cancel background work (app shutdown)."""
        await self.background.aclose()


def _thread_store(runtime: Runtime) -> ThreadStore:
    store = runtime.store
    if not callable(getattr(store, "create_thread", None)):
        raise TypeError(f"{type(store).__name__} keeps no threads (it is no ThreadStore)")
    return cast(ThreadStore, store)


async def get_protocol(request: Request) -> AgentProtocol:
    """The app's ``AgentProtocol`` (made on first use, for the runtime the lifespan opened).

    A coroutine: FastAPI runs a plain function dependency in its thread pool, a thread hop
    (and a GIL hand-over) per request for a lookup of a few attributes.
    """
    state = request.app.state
    runtime: Runtime = state.runtime
    protocol: AgentProtocol | None = getattr(state, "agent_protocol", None)
    if protocol is None or protocol.runtime is not runtime:
        protocol = AgentProtocol(runtime)
        state.agent_protocol = protocol
    return protocol


ProtocolDep = Annotated[AgentProtocol, Depends(get_protocol)]
