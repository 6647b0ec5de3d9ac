"""An incremental Server-Sent Events parser over an httpx response's lines (WHATWG rules).

::

    with client.stream("GET", url) as response:
        for item in iter_sse(response):
            if isinstance(item, SSEEvent): ...

Frames are dispatched at the blank line that ends them, as they arrive, so a test can stop
reading (disconnect) after any event. Comment lines (``: heartbeat``) come out as
``SSEComment`` so heartbeats can be asserted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["SSEComment", "SSEEvent", "SSEParser", "aiter_sse", "iter_sse"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` decoded as JSON."""
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class SSEComment:
    """A comment line (``: text``)."""

    text: str


@dataclass(slots=True)
class SSEParser:
    """Feed it lines (without their line ending); it returns what each line completes."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    _retry: int | None = None
    _has_fields: bool = False
    last_event_id: str | None = None
    """The id of the last event that carried one (what a reconnect sends)."""

    def feed(self, line: str) -> SSEEvent | SSEComment | None:
        """Process one line; an event at a blank line, a comment for ``:`` lines."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return SSEComment(line[1:].removeprefix(" "))
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        self._has_fields = True
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_fields:
            return None
        event = None
        if self._data:  # per the spec, a frame with no data line dispatches nothing
            event = SSEEvent(
                event=self._event or "message",
                data="\n".join(self._data),
                id=self._id,
                retry=self._retry,
            )
        if self._id is not None:
            self.last_event_id = self._id
        self._event, self._data, self._id, self._retry = "", [], None, None
        self._has_fields = False
        return event


def iter_sse(response: httpx.Response) -> Iterator[SSEEvent | SSEComment]:
    """Events and comments of a streamed response, as they arrive."""
    parser = SSEParser()
    for line in response.iter_lines():
        item = parser.feed(line)
        if item is not None:
            yield item


async def aiter_sse(response: httpx.Response) -> AsyncIterator[SSEEvent | SSEComment]:
    """Events and comments of a streamed response (async client), as they arrive."""
    parser = SSEParser()
    async for line in response.aiter_lines():
        item = parser.feed(line)
        if item is not None:
            yield item
