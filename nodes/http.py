"""``http``: an outbound HTTP request whose response lands in state, SSRF-safe by default.

``url``, ``query`` and ``headers`` are templates, ``body`` is CEL (a string is sent as text, any
other value as JSON, unless ``body_type`` says otherwise). ``credential`` names a credential in
the server's store (``services["credentials"]``); its headers are added here and never appear in
the document, the state, step records or logs, and are dropped when a redirect leaves the origin.
Every request and every redirect hop goes through ``PinnedTransport`` (see ``_ssrf``).

Outcomes: a 2xx response is parsed (``response.format``: ``json`` or ``text``) into
``response.output``; any other status is E003, a timeout E002 (both retried per ``retry``), a
response over ``max_response_bytes`` E003, an address the policy refuses E001.

Nodes run at least once: a retried or resumed run may send the same request again, so prefer
idempotent endpoints or an idempotency key header (``{{ run.id }}`` is stable across retries).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field

from graph_runtime.errors import InputValidationError, NodeExecutionError, RunTimeoutError
from graph_runtime.expressions import to_view
from nodes._config import NodeConfig
from nodes._ssrf import PinnedTransport, SSRFPolicy, host_matches
from nodes.base import BaseNode, ExpressionRef, NodeContext, NodeOutput, pointer

__all__ = ["Config", "Node", "ResponseSpec", "credential_headers"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class ResponseSpec(NodeConfig):
    """How the response body is read."""

    format: Literal["json", "text"] = Field(default="json", description="Body parsing.")
    output: str | None = Field(default=None, description="State key for the parsed body.")


class Config(NodeConfig):
    """Config of an ``http`` node."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, max_length=8192, description="URL template.")
    query: dict[str, str] = Field(default_factory=dict, description="{name: template}.")
    headers: dict[str, str] = Field(default_factory=dict, description="{name: template}.")
    body: str | None = Field(default=None, description="CEL giving the body.")
    body_type: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: a string is text, anything else JSON."
    )
    credential: str | None = Field(default=None, description="A server credential name.")
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Per request.")
    max_response_bytes: int = Field(default=1_000_000, ge=1, le=50_000_000)
    follow_redirects: bool = True
    max_redirects: int = Field(default=5, ge=0, le=20)


def credential_headers(spec: Any, name: str) -> dict[str, str]:
    """The headers a stored credential adds.

    Shapes: ``{"headers": {...}}``, ``{"bearer": token}``, ``{"header": name, "value": v}``,
    ``{"basic": [user, password]}``, or a bare token string (a bearer token). A mapping may
    add ``"hosts": [...]`` (names or ``*.suffix``): the only hosts it is ever sent to.
    """
    if isinstance(spec, str):
        return {"Authorization": f"Bearer {spec}"}
    if isinstance(spec, Mapping):
        if isinstance(spec.get("headers"), Mapping):
            return {str(k): str(v) for k, v in spec["headers"].items()}
        if "bearer" in spec:
            return {"Authorization": f"Bearer {spec['bearer']}"}
        if "header" in spec and "value" in spec:
            return {str(spec["header"]): str(spec["value"])}
        if isinstance(spec.get("basic"), list | tuple) and len(spec["basic"]) == 2:
            pair = f"{spec['basic'][0]}:{spec['basic'][1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    raise NodeExecutionError(f"credential {name!r} has a shape this node cannot use")


def _policy(settings: Any) -> tuple[SSRFPolicy, httpx.AsyncBaseTransport | None, int | None]:
    if isinstance(settings, SSRFPolicy):
        return settings, None, None
    settings = dict(settings or {})
    kwargs: dict[str, Any] = {
        "allow_hosts": frozenset(settings.get("allow_hosts") or ()),
        "allow_private": bool(settings.get("allow_private", False)),
        "only_allow_hosts": bool(settings.get("only_allow_hosts", False)),
    }
    if settings.get("resolver") is not None:
        kwargs["resolver"] = settings["resolver"]
    return SSRFPolicy(**kwargs), settings.get("transport"), settings.get("max_response_bytes")


def _check_header(name: str, value: str) -> None:
    if any(c in name + value for c in "\r\n\0"):
        raise InputValidationError(f"header {name!r} contains a line break")


class Node(BaseNode[Config]):
    """Send the request; parse the response."""

    type_name: ClassVar[str] = "http"
    config_model: ClassVar[type[Config]] = Config
    runtime_writes: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, node_id: str, config: Config, **kwargs: Any) -> None:
        super().__init__(node_id, config, **kwargs)
        self._url = self.template(config.url)
        self._query = [(k, self.template(v)) for k, v in config.query.items()]
        self._headers = [(k, self.template(v)) for k, v in config.headers.items()]
        self._body = self.expr(config.body) if config.body is not None else None

    async def run(self, ctx: NodeContext) -> NodeOutput:
        """Render, send (following redirects hop by hop), parse."""
        policy, transport, cap = _policy(ctx.services.get("http"))
        limit = min(self.config.max_response_bytes, cap or self.config.max_response_bytes)
        url = httpx.URL(ctx.render(self._url, "url"))
        if url.userinfo:
            raise InputValidationError("credentials in the URL are refused; use `credential`")
        if self._query:
            url = url.copy_merge_params({k: ctx.render(t, f"query.{k}") for k, t in self._query})
        headers = {k: ctx.render(t, f"headers.{k}") for k, t in self._headers}
        secret = self._credential(ctx, url)
        for name, value in {**headers, **secret}.items():
            _check_header(name, value)
        content, content_type = self._content(ctx)
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        timeout = httpx.Timeout(self.config.timeout_seconds)
        pinned = PinnedTransport(policy, transport)
        async with httpx.AsyncClient(transport=pinned, timeout=timeout) as client:
            try:
                status, body = await self._send(client, url, headers, secret, content, limit)
            except httpx.TimeoutException as exc:
                raise RunTimeoutError(f"{self.config.method} {_shown(url)} timed out") from exc
            except httpx.HTTPError as exc:
                raise NodeExecutionError(
                    f"{self.config.method} {_shown(url)} failed: {type(exc).__name__}: {exc}"
                ) from exc
        if not 200 <= status < 300:
            excerpt = body[:200].decode("utf-8", "replace")
            raise NodeExecutionError(
                f"{self.config.method} {_shown(url)} answered HTTP {status}: {excerpt}"
            )
        value = self._parse(body)
        out = self.config.response.output
        return NodeOutput(
            update={out: value} if out else {},
            result={"status": status, out or "body": to_view(value)},
        )

    def _credential(self, ctx: NodeContext, url: httpx.URL) -> dict[str, str]:
        name = self.config.credential
        if name is None:
            return {}
        store = ctx.services.get("credentials") or {}
        if name not in store:
            raise NodeExecutionError(f"credential {name!r} is not in the server's credentials")
        spec = store[name]
        # A credential bound to hosts is never sent elsewhere, whatever the URL template says.
        hosts = spec.get("hosts") if isinstance(spec, Mapping) else None
        if hosts is not None and not host_matches(url.host, hosts):
            raise InputValidationError(f"credential {name!r} may not be sent to {url.host!r}")
        return credential_headers(spec, name)

    def _content(self, ctx: NodeContext) -> tuple[bytes | None, str | None]:
        if self._body is None or self.config.method in ("GET", "HEAD"):
            return None, None
        value = ctx.evaluate(self._body, "body")
        kind = self.config.body_type
        if kind == "text" or (kind == "auto" and isinstance(value, str)):
            text = value if isinstance(value, str) else json.dumps(value)
            return text.encode(), "text/plain; charset=utf-8"
        return json.dumps(value).encode(), "application/json"

    async def _send(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        headers: dict[str, str],
        secret: dict[str, str],
        content: bytes | None,
        limit: int,
    ) -> tuple[int, bytes]:
        method, origin = self.config.method, _origin(url)
        for _hop in range(self.config.max_redirects + 1):
            sent = {**headers, **secret} if _origin(url) == origin else _public(headers)
            request = client.build_request(method, url, headers=sent, content=content)
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location and self.config.follow_redirects:
                    # Joined against the URL we asked for: the response's own URL holds the
                    # pinned address, not the host name.
                    url = url.join(location)
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method, content = "GET", None
                    continue
                return response.status_code, await _read(response, limit)
            finally:
                await response.aclose()
        raise NodeExecutionError(f"more than {self.config.max_redirects} redirects")

    def _parse(self, body: bytes) -> Any:
        text = body.decode("utf-8", "replace")
        if self.config.response.format == "text":
            return text
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise NodeExecutionError(f"the response is not JSON: {exc}") from None

    @classmethod
    def expressions(cls, config: Config) -> list[ExpressionRef]:
        refs = [ExpressionRef(path="/url", source=config.url, kind="template")]
        refs += [
            ExpressionRef(path=pointer("query", k), source=v, kind="template")
            for k, v in config.query.items()
        ]
        refs += [
            ExpressionRef(path=pointer("headers", k), source=v, kind="template")
            for k, v in config.headers.items()
        ]
        if config.body is not None:
            refs.append(ExpressionRef(path="/body", source=config.body))
        return refs

    @classmethod
    def writes(cls, config: Config) -> set[str]:
        return {config.response.output} if config.response.output else set()


async def _read(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise NodeExecutionError(f"the response is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise NodeExecutionError(f"the response is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _public(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS}


def _shown(url: httpx.URL) -> str:
    # Query strings can carry tokens; records show scheme, host and path only.
    return str(url.copy_with(query=None, fragment=None))
