"""The LangGraph Server API ("Agent Protocol") subset that the SDK and RemoteGraph call.

It runs on the same ``Runtime`` as the rest of the server (DESIGN.md §1, §8).

* :mod:`.assistants`: one assistant per stored workflow (deterministic ids).
* :mod:`.threads`: threads (records in the store's ``threads`` table); their state and
  history from LangGraph's checkpoints; their status derived on every read.
* :mod:`.runs`: runs on threads, executed by the ``RunManager``; multitask strategies.
* :mod:`.streaming`: our stored events → the protocol's SSE frames.
* :mod:`.responses`: the run stream and the wait/join bodies; :mod:`.thread_stream`: a
  thread's runs as one stream.
* :mod:`.background`: what happens when a run ends (webhook, stateless thread deletion).
* :mod:`.state`, :mod:`.models`: state views; request and response bodies.

The routes are in ``server/routes/agent_protocol*.py``.
"""

from __future__ import annotations

from server.agent_protocol.protocol import AgentProtocol, get_protocol

__all__ = ["AgentProtocol", "get_protocol"]
