"""Storage outages: the database refuses writes (locked past its timeout, disk full, read-only).

A run that hits one is not failed: nothing of it is lost (its checkpoints are durable, the
records the database refused wait in the write-failure journal), so its worker waits until
the database takes writes again and resumes it from its last checkpoint, like a restart
would. The node that was cut re-executes (nodes are at-least-once); its step record is not
written twice.
"""

from __future__ import annotations

import asyncio
import logging

from checkpoints._sqlite_faults import is_storage_fault
from checkpoints.store import RunStore
from graph_runtime.errors import StoreError

__all__ = ["StorageOutage", "is_storage_fault", "wait_for_store"]

logger = logging.getLogger(__name__)

_FIRST_DELAY = 0.05


class StorageOutage(Exception):
    """A run's write was refused by the database; the run resumes once it takes writes."""


async def wait_for_store(store: RunStore, max_delay: float) -> None:
    """Return once the database commits a write (which replays the journal first).

    Retries with exponential backoff up to ``max_delay`` seconds between attempts.

    Raises:
        StoreError: a failure that is not an outage (e.g. the store was closed).
    """
    delay = _FIRST_DELAY
    while True:
        try:
            await store.probe()
            return
        except StoreError as exc:
            if not is_storage_fault(exc):
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
