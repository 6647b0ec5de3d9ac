from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))

from node_docs import runtime
from openai_stub import OpenAIStub, serve_app

from graph_runtime.runtime import Runtime

# -- OpenAI-compatible stub ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[tuple[OpenAIStub, str]]:
    stub = OpenAIStub()
    with serve_app(stub.app()) as url:
        yield stub, url


@pytest.fixture
def openai_stub(_stub_server: tuple[OpenAIStub, str]) -> tuple[OpenAIStub, str]:
    stub, url = _stub_server
    stub.replies.clear()
    stub.requests.clear()
    return stub, f"{url}/v1"


# -- a loopback HTTP API for the http node ------------------------------------------------------


async def _json(request: Request) -> Response:
    return JSONResponse(
        {
            "query": dict(request.query_params),
            "auth": request.headers.get("authorization"),
            "host": request.headers.get("host"),
            "method": request.method,
        }
    )


async def _echo(request: Request) -> Response:
    return JSONResponse(
        {"body": (await request.body()).decode(), "type": request.headers.get("content-type")}
    )


async def _status(request: Request) -> Response:
    return PlainTextResponse("nope", status_code=int(request.path_params["code"]))


async def _redirect(request: Request) -> Response:
    return RedirectResponse(request.query_params["to"], status_code=302)


async def _big(request: Request) -> Response:
    return PlainTextResponse("x" * 50_000)


async def _slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return PlainTextResponse("late")


async def _text(request: Request) -> Response:
    return PlainTextResponse("plain words")


API = Starlette(
    routes=[
        Route("/json", _json, methods=["GET", "POST"]),
        Route("/echo", _echo, methods=["POST", "PUT"]),
        Route("/status/{code:int}", _status),
        Route("/redirect", _redirect),
        Route("/big", _big),
        Route("/slow", _slow),
        Route("/text", _text),
    ]
)


@pytest.fixture(scope="session")
def api_url() -> Iterator[str]:
    with serve_app(API) as url:
        yield url


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime(tmp_path) as r:
        yield r
