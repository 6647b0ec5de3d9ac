"""The SSE parser against the WHATWG "Interpreting an event stream" rules and its examples."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from graph_runtime.sdk.sse import SSEFrame, SSEParser, aiter_sse, iter_sse


def parse(text: str) -> list[SSEFrame]:
    return SSEParser().feed(text)


def frame(data: str, event: str = "message", id: str = "", retry: int | None = None) -> SSEFrame:
    return SSEFrame(event=event, data=data, id=id, retry=retry)


# A stream that exercises every rule at once: all three line endings, comments, ids, retry,
# an empty data line, a non-ASCII character (2 and 4 UTF-8 bytes) and a trailing partial frame.
SAMPLE = (
    "\ufeff: hello\r\n"
    "retry: 1500\n"
    "id: 1\r"
    "event: status\r\n"
    'data: {"new": "running"}\n'
    "\n"
    "data: line one\r"
    "data:line two\r"
    "data\r"
    "data:  indented\r\n"
    "\r\n"
    ": ping\n"
    "\n"
    "id: 3\n"
    "event: token\n"
    "data: caf\u00e9 \U0001f600\n"
    "\n"
    "data: never dispatched"
)
SAMPLE_FRAMES = [
    frame('{"new": "running"}', event="status", id="1", retry=1500),
    frame("line one\nline two\n\n indented", id="1", retry=1500),
    frame("caf\u00e9 \U0001f600", event="token", id="3", retry=1500),
]


def test_spec_example_multiline_data() -> None:
    assert parse("data: YHOO\ndata: +2\ndata: 10\n\n") == [frame("YHOO\n+2\n10")]


def test_spec_example_ids_and_comments() -> None:
    text = (
        ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
    )
    assert parse(text) == [frame("first event", id="1"), frame("second event", id="")]


def test_spec_example_empty_data() -> None:
    assert parse("data\n\ndata\ndata\n\ndata:\n") == [frame(""), frame("\n")]


def test_spec_example_one_leading_space_is_dropped() -> None:
    assert parse("data:test\n\ndata: test\n\n") == [frame("test"), frame("test")]


def test_id_persists_and_an_id_with_nul_is_ignored() -> None:
    parser = SSEParser()
    frames = parser.feed("id: 7\ndata: a\n\ndata: b\n\nid: 8\0\ndata: c\n\n")
    assert [(f.id, f.data) for f in frames] == [("7", "a"), ("7", "b"), ("7", "c")]
    assert parser.last_event_id == "7"


def test_comments_and_blocks_without_data_dispatch_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(": heartbeat\n\n:\n\nid: 4\n\nevent: step\n\n") == []
    assert parser.last_event_id == "4"
    # The event type of an undispatched block does not leak into the next frame.
    assert parser.feed("data: x\n\n") == [frame("x", id="4")]


def test_event_name_and_unknown_fields() -> None:
    assert parse("event: end\nfoo: bar\ndata: {}\nevent\n\n") == [frame("{}", event="message")]
    assert parse("event: end\ndata: {}\n\n") == [frame("{}", event="end")]


def test_retry_needs_ascii_digits() -> None:
    parser = SSEParser()
    parser.feed("retry: 3000\n\n")
    assert parser.retry == 3000
    for bad in ("retry: 1a\n", "retry: -5\n", "retry: \u0661\u0662\n", "retry:\n", "retry: 1.5\n"):
        parser.feed(bad)
        assert parser.retry == 3000, bad
    assert parser.feed("data: x\n\n") == [frame("x", retry=3000)]


@pytest.mark.parametrize("eol", ["\n", "\r", "\r\n"])
def test_every_line_ending(eol: str) -> None:
    text = eol.join(["id: 2", "event: log", "data: a", "data: b", "", ""])
    assert parse(text) == [frame("a\nb", event="log", id="2")]


def test_cr_and_lf_in_separate_chunks_are_one_line_end() -> None:
    parser = SSEParser()
    # Read as two line ends, the LF would be a blank line and dispatch "a" alone.
    assert parser.feed("data: a\r") == []
    assert parser.feed("") == []
    assert parser.feed("\ndata: b\r\n\r") == [frame("a\nb")]
    assert parser.feed("\n") == []


def test_leading_bom_is_dropped_once() -> None:
    assert parse("\ufeffdata: x\n\n") == [frame("x")]
    # A second BOM is part of the field name, which is then unknown.
    assert parse("\ufeff\ufeffdata: x\n\n") == []
    parser = SSEParser()
    assert parser.feed("") == []
    assert parser.feed("\ufeffdata: y\n\n") == [frame("y")]


def test_the_sample_in_one_piece() -> None:
    assert parse(SAMPLE) == SAMPLE_FRAMES
    assert SSEParser().feed_bytes(SAMPLE.encode()) == SAMPLE_FRAMES


def test_text_split_at_every_character() -> None:
    for cut in range(len(SAMPLE) + 1):
        parser = SSEParser()
        frames = parser.feed(SAMPLE[:cut]) + parser.feed(SAMPLE[cut:])
        assert frames == SAMPLE_FRAMES, cut


def test_bytes_split_at_every_byte() -> None:
    data = SAMPLE.encode()
    for cut in range(len(data) + 1):
        parser = SSEParser()
        frames = parser.feed_bytes(data[:cut]) + parser.feed_bytes(data[cut:])
        assert frames == SAMPLE_FRAMES, cut


def test_bytes_one_at_a_time() -> None:
    parser = SSEParser()
    frames = [
        f
        for i in range(len(SAMPLE.encode()))
        for f in parser.feed_bytes(SAMPLE.encode()[i : i + 1])
    ]
    assert frames == SAMPLE_FRAMES
    assert parser.last_event_id == "3"


def test_iter_sse_reads_a_streaming_response() -> None:
    data = SAMPLE.encode()
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    response = httpx.Response(200, content=iter(chunks))
    parser = SSEParser()
    assert list(iter_sse(response, parser)) == SAMPLE_FRAMES
    assert parser.retry == 1500


async def test_aiter_sse_reads_a_streaming_response() -> None:
    data = SAMPLE.encode()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 5):
            yield data[i : i + 5]

    response = httpx.Response(200, content=body())
    assert [f async for f in aiter_sse(response)] == SAMPLE_FRAMES
