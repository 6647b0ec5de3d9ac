"""The one place that blocks: ``SyncRuntime`` runs the async ``Runtime`` on a private loop thread.

An anyio ``BlockingPortal`` owns an event loop on its own thread, so these methods work from
plain scripts and from inside Jupyter's already-running loop alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from checkpoints.store import RunRecord
from graph_runtime.models import Event, TaskResponse, TaskStepResult
from graph_runtime.runtime import Runtime, WorkflowSource
from graph_runtime.schema import WorkflowDefinition

__all__ = ["SyncRuntime"]


class SyncRuntime:
    """Blocking twin of ``Runtime`` for scripts and notebooks.

    ::

        with SyncRuntime("runs.db") as rt:
            print(rt.run("examples/routing.json", {"ticket": "refund"}).result)
    """

    def __init__(self, db_path: str | Path = "graph_runtime.db", **kwargs: Any) -> None:
        self._runtime = Runtime(db_path, **kwargs)
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None

    def __enter__(self) -> SyncRuntime:
        self._portal_cm = start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._portal.call(self._runtime.__aenter__)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._portal is not None and self._portal_cm is not None:
            try:
                self._portal.call(self._runtime.__aexit__, None, None, None)
            finally:
                self._portal_cm.__exit__(None, None, None)
        self._portal = self._portal_cm = None

    @property
    def portal(self) -> BlockingPortal:
        """The portal to the runtime's loop (inside ``with`` only)."""
        if self._portal is None:
            raise RuntimeError("use the SyncRuntime inside `with SyncRuntime(...) as rt:`")
        return self._portal

    def load(
        self, workflow: WorkflowSource, *, workflow_id: str | None = None
    ) -> WorkflowDefinition:
        """Parse and check a workflow (see ``Runtime.load``)."""
        return self._runtime.load(workflow, workflow_id=workflow_id)

    def run(
        self, workflow: WorkflowSource, input: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> TaskResponse:
        """Run a workflow until it finishes or waits; return its ``TaskResponse``."""
        return self.portal.call(lambda: self._runtime.run(workflow, input, **kwargs))

    def submit(
        self, workflow: WorkflowSource, input: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> RunRecord:
        """Queue a run in the background."""
        return self.portal.call(lambda: self._runtime.submit(workflow, input, **kwargs))

    def stream(
        self, workflow: WorkflowSource, input: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[Event]:
        """Run a workflow, yielding its events as they happen."""
        return self._iterate(self._runtime.stream(workflow, input, **kwargs))

    def events(self, run_id: str, after: int = 0, *, follow: bool = False) -> Iterator[Event]:
        """A run's events after ``after`` (see ``Runtime.events``)."""
        return self._iterate(self._runtime.events(run_id, after, follow=follow))

    def _iterate(self, agen: AsyncIterator[Event]) -> Iterator[Event]:
        with self.portal.wrap_async_context_manager(_aclosing(agen)):
            while True:
                try:
                    yield self.portal.call(agen.__anext__)
                except StopAsyncIteration:
                    return

    def wait(self, run_id: str, timeout: float | None = None) -> TaskResponse:
        """Wait until the run finishes or waits."""
        return self.portal.call(self._runtime.wait, run_id, timeout)

    def pause(self, run_id: str) -> RunRecord:
        """Pause a running run at its next superstep boundary."""
        record: RunRecord = self.portal.call(self._runtime.pause, run_id)
        return record

    def resume(self, run_id: str, value: Any = None) -> RunRecord:
        """Continue a paused run."""
        record: RunRecord = self.portal.call(self._runtime.resume, run_id, value)
        return record

    def stop(self, run_id: str) -> RunRecord:
        """Stop a run."""
        record: RunRecord = self.portal.call(self._runtime.stop, run_id)
        return record

    def status(self, run_id: str) -> TaskResponse:
        """The ``TaskResponse`` of a run."""
        return self.portal.call(self._runtime.status, run_id)

    def steps(self, run_id: str) -> list[TaskStepResult]:
        """The step records of a run."""
        return self.portal.call(self._runtime.steps, run_id)


class _aclosing:
    def __init__(self, agen: Any) -> None:
        self.agen = agen

    async def __aenter__(self) -> Any:
        return self.agen

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.agen.aclose()
