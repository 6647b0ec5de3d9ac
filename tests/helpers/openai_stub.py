"""An OpenAI-compatible chat completions server on loopback, scripted by the test.

``OpenAIStub.replies`` is a queue; each request takes the next reply: ``{"content": "..."}``,
``{"json": {...}}`` (content is that JSON), ``{"tool_calls": [{"name", "args"}]}``, or
``{"status": 429}`` (an error response). Streaming requests get SSE chunks (role, one chunk per
word, tool call deltas, finish, usage, ``[DONE]``), so langchain-openai's real client code runs.
``serve_app`` runs any ASGI app with uvicorn in a thread on a pre-bound ``127.0.0.1:0`` socket.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` on loopback in a thread; yield its base URL (``http://127.0.0.1:PORT``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    # uvicorn installs no signal handlers outside the main thread.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the loopback server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@dataclass
class OpenAIStub:
    """The scripted replies and the requests received."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({**body, "authorization": request.headers.get("authorization")})
        reply: dict[str, Any] = self.replies.pop(0) if self.replies else {"content": "(none)"}
        if "status" in reply:
            error = {"error": {"message": "scripted failure", "type": "rate_limit_error"}}
            return JSONResponse(error, status_code=int(reply["status"]))
        content = json.dumps(reply["json"]) if "json" in reply else reply.get("content", "")
        calls = [
            {
                "id": call.get("id", f"call_{i}"),
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
            for i, call in enumerate(reply.get("tool_calls", []))
        ]
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage", False)
            return StreamingResponse(
                _chunks(body["model"], content, calls, usage), media_type="text/event-stream"
            )
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            }
        )


def _frame(model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    chunk = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


async def _chunks(
    model: str, content: str, calls: list[dict[str, Any]], usage: bool
) -> AsyncIterator[str]:
    yield _frame(model, {"role": "assistant", "content": ""})
    for token in (t for t in re.split(r"(\s)", content) if t):
        yield _frame(model, {"content": token})
    for i, call in enumerate(calls):
        head = {"index": i, "id": call["id"], "type": "function"}
        yield _frame(
            model,
            {
                "tool_calls": [
                    {**head, "function": {"name": call["function"]["name"], "arguments": ""}}
                ]
            },
        )
        yield _frame(
            model,
            {
                "tool_calls": [
                    {"index": i, "function": {"arguments": call["function"]["arguments"]}}
                ]
            },
        )
    yield _frame(model, {}, "tool_calls" if calls else "stop")
    if usage:
        tail = {
            "id": "chatcmpl-stub",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }
        yield f"data: {json.dumps(tail)}\n\n"
    yield "data: [DONE]\n\n"
