"""Work that outlives a request: what happens when a protocol run ends, and the webhook.

Every task is named and owned by :class:`Background`; ``aclose()`` (app shutdown) cancels
the ones still waiting. A run's *finisher* waits until the run settles (ends, or waits at an
interrupt), computes its final values once, POSTs its ``webhook`` and deletes a stateless
run's temporary thread; a ``/runs/wait`` of a stateless run reads the values from it, so the
thread is gone only after they were read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from graph_runtime.errors import InputValidationError, Problem, RunNotFound
from graph_runtime.models import TaskStatus, utcnow
from graph_runtime.runtime import Runtime
from nodes._ssrf import PinnedTransport, SSRFPolicy
from server.agent_protocol.runs import Runs, Started

__all__ = ["Background", "check_webhook"]

logger = logging.getLogger(__name__)

_SETTLED = frozenset({TaskStatus.PAUSED, TaskStatus.CRASHED})
_WEBHOOK_TIMEOUT = 10.0


def check_webhook(url: str) -> str:
    """Refuse a webhook that is not an absolute http(s) URL (422); addresses are checked later.

    Raises:
        InputValidationError: a relative URL, another scheme, or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = Problem(path="/webhook", message="must be an absolute http(s) URL")
        raise InputValidationError("invalid webhook URL", problems=[problem])
    return url


class Background:
    """Owns the protocol's background tasks."""

    def __init__(self, runtime: Runtime, runs: Runs) -> None:
        self.runtime = runtime
        self.runs = runs
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finishers: dict[str, asyncio.Task[dict[str, Any]]] = {}

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in a named task owned here (its failure is logged)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "background task %s failed",
                task.get_name(),
                exc_info=task.exception(),
                extra={"action": "ap_background"},
            )

    def finish(self, started: Started, webhook: str | None) -> None:
        """Watch a run that needs work when it settles (a webhook, a temporary thread)."""
        if webhook is None and not started.temporary:
            return
        run_id = started.record.run_id
        task = self.spawn(self._finish(started, webhook), name=f"ap-finish:{run_id}")
        self._finishers[run_id] = task
        task.add_done_callback(lambda _: self._finishers.pop(run_id, None))

    async def final_values(self, run_id: str) -> dict[str, Any] | None:
        """The values a finisher computed for the run (None: it has no finisher)."""
        task = self._finishers.get(run_id)
        if task is None:
            return None
        # Shielded: a client that goes away must not cancel the finisher.
        return await asyncio.shield(task)

    async def _finish(self, started: Started, webhook: str | None) -> dict[str, Any]:
        run_id = started.record.run_id
        record = await self.runtime.settle(run_id)
        values = await self.runs.final_values(record)
        if webhook is not None:
            await self._post_webhook(webhook, record.run_id, values)
        await self.runs.forget_thread(started)
        return values

    async def _post_webhook(self, url: str, run_id: str, values: Mapping[str, Any]) -> None:
        try:
            record = await self.runtime.get_run(run_id)
        except RunNotFound:
            return
        body = self.runs.view(record).model_dump(mode="json")
        body.update(
            run_started_at=record.started_at.isoformat() if record.started_at else None,
            run_ended_at=record.finished_at.isoformat() if record.finished_at else None,
            webhook_sent_at=utcnow().isoformat(),
            values=dict(values),
        )
        if "__error__" in values:
            body["error"] = values["__error__"]
        transport = PinnedTransport(_policy(self.runtime.services.get("http")))
        try:
            async with httpx.AsyncClient(transport=transport, timeout=_WEBHOOK_TIMEOUT) as client:
                response = await client.post(url, json=body)
            if response.status_code >= 400:
                logger.warning(
                    "webhook answered %s",
                    response.status_code,
                    extra={"action": "webhook", "run_id": run_id},
                )
        except (httpx.HTTPError, InputValidationError) as exc:
            # The reference logs webhook failures and goes on; so do we.
            logger.warning("webhook failed: %s", exc, extra={"action": "webhook", "run_id": run_id})

    async def aclose(self) -> None:
        """Cancel what is still waiting (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _policy(settings: Any) -> SSRFPolicy:
    # The same settings as the http node's (services["http"]): one SSRF policy per server.
    if isinstance(settings, SSRFPolicy):
        return settings
    settings = dict(settings or {})
    kwargs: dict[str, Any] = {
        "allow_hosts": frozenset(settings.get("allow_hosts") or ()),
        "allow_private": bool(settings.get("allow_private", False)),
        "only_allow_hosts": bool(settings.get("only_allow_hosts", False)),
    }
    if settings.get("resolver") is not None:
        kwargs["resolver"] = settings["resolver"]
    return SSRFPolicy(**kwargs)
