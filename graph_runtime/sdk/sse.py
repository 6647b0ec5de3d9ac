"""An incremental Server-Sent Events parser (WHATWG HTML, "Interpreting an event stream").

The parser is sans-I/O: feed it text (or bytes) as it arrives, in chunks of any size, and it
returns the frames completed so far::

    parser = SSEParser()
    for chunk in chunks:
        for frame in parser.feed(chunk):
            print(frame.id, frame.event, frame.data)

It follows the spec where clients usually cut corners: lines end with CRLF, LF or a lone CR
(also when CR and LF arrive in different chunks), a leading byte-order mark is dropped,
``data`` lines are joined with newlines, ``id`` persists across frames as the last event id
(an ``id`` containing NUL is ignored), ``retry`` must be all ASCII digits, comment lines
(``: ping``) are skipped, a frame with no ``data`` is not dispatched, and an unterminated frame
at the end of the stream is discarded. ``iter_sse`` / ``aiter_sse`` read an httpx streaming
response.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx

__all__ = ["SSEFrame", "SSEParser", "aiter_sse", "iter_sse"]

_EOL = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEFrame:
    """One dispatched event of an event stream."""

    event: str = "message"
    """The ``event`` field; ``message`` when the frame had none."""
    data: str = ""
    """The ``data`` lines joined with ``\\n``."""
    id: str = ""
    """The last event id when the frame was dispatched (ids persist across frames)."""
    retry: int | None = None
    """The reconnection time in milliseconds last set by the server, if any."""


class SSEParser:
    """Turns event-stream text into ``SSEFrame``s, chunk by chunk."""

    def __init__(self) -> None:
        self.last_event_id = ""
        """The last ``id`` seen; what a reconnecting client sends as ``Last-Event-ID``."""
        self.retry: int | None = None
        """The last valid ``retry`` value (milliseconds), or None."""
        self._buffer = ""
        self._started = False
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, text: str) -> list[SSEFrame]:
        """Parse the next piece of the stream; return the frames it completed."""
        if not self._started and text:
            self._started = True
            text = text.removeprefix(_BOM)
        if self._skip_lf and text:
            # The previous chunk ended with CR: an LF starting this one is the same line end.
            self._skip_lf = False
            text = text.removeprefix("\n")
        buffer = self._buffer + text
        frames: list[SSEFrame] = []
        pos = 0
        for match in _EOL.finditer(buffer):
            self._line(buffer[pos : match.start()], frames)
            pos = match.end()
            if match.group() == "\r" and pos == len(buffer):
                self._skip_lf = True
        self._buffer = buffer[pos:]
        return frames

    def feed_bytes(self, data: bytes) -> list[SSEFrame]:
        """Like ``feed``, for raw bytes: event streams are always UTF-8, whatever the headers say.

        Multi-byte characters split across chunks are decoded correctly.
        """
        return self.feed(self._decoder.decode(data))

    def _line(self, line: str, frames: list[SSEFrame]) -> None:
        if not line:
            self._dispatch(frames)
            return
        if line[0] == ":":
            return  # a comment, e.g. a heartbeat
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        # Any other field name is ignored, as the spec requires.

    def _dispatch(self, frames: list[SSEFrame]) -> None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return  # a block without data (say, only `id:` or `retry:`) is not an event
        frames.append(
            SSEFrame(
                event=event or "message",
                data="\n".join(data),
                id=self.last_event_id,
                retry=self.retry,
            )
        )


def iter_sse(response: httpx.Response, parser: SSEParser | None = None) -> Iterator[SSEFrame]:
    """The frames of a streaming httpx response (``client.stream(...)``), as they arrive.

    Pass a ``parser`` to read its ``last_event_id`` and ``retry`` afterwards.
    """
    parser = parser or SSEParser()
    for chunk in response.iter_bytes():
        yield from parser.feed_bytes(chunk)


async def aiter_sse(
    response: httpx.Response, parser: SSEParser | None = None
) -> AsyncIterator[SSEFrame]:
    """The frames of a streaming async httpx response, as they arrive."""
    parser = parser or SSEParser()
    async for chunk in response.aiter_bytes():
        for frame in parser.feed_bytes(chunk):
            yield frame
