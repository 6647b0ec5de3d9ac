"""Chat models for ``llm`` nodes: the model factory, the scripted fake, provider error mapping.

A node names its model by an alias of the document's ``models`` map, by a server alias, or
inline. Server aliases (``ModelFactory(aliases=...)``, from settings or Python) are trusted and
may carry keys; whatever comes from a document is not: it may pick a provider, a model name and
a few sampling parameters, may read an API key only from an allow-listed environment variable,
and may never send that key to a ``base_url`` the server does not trust. Otherwise any workflow
author could point ``base_url`` at their own host and collect the server's keys.

Providers: ``fake`` (a scripted ``GenericFakeChatModel`` that also scripts tool calls and JSON
output, and streams), ``openai`` (``langchain-openai``: any OpenAI-compatible server) and, when
the ``langchain`` package is installed, everything ``init_chat_model`` knows.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import httpx
from langchain_core.language_models import BaseChatModel

from graph_runtime.errors import (
    GraphRuntimeError,
    NodeExecutionError,
    Problem,
    RunTimeoutError,
    WorkflowValidationError,
)
from nodes._fake import ScriptedChatModel

__all__ = [
    "DOCUMENT_PARAMS",
    "ModelFactory",
    "ScriptedChatModel",
    "model_factory",
    "provider_error",
]

#: Parameters a document may pass to a provider (no headers, clients or proxies).
DOCUMENT_PARAMS = frozenset(
    {
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "stop",
        "timeout",
        "max_retries",
        "n",
        "reasoning_effort",
    }
)
_DOCUMENT_KEYS = frozenset({"provider", "model", "base_url", "api_key_env", "params", "responses"})
#: Keys a document may override on a server alias it refers to with ``ref``.
_REF_OVERRIDES = frozenset({"ref", "model", "params"})
_MAX_CACHED = 256

ModelSource = Mapping[str, Any] | BaseChatModel | Callable[[], BaseChatModel]
"""A server alias: a spec, a ready model, or a factory returning one."""


class ModelSpecError(WorkflowValidationError):
    """The model spec is refused (a document problem, E001, never retried)."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem(path="", message=message)], message)


class ModelFactory:
    """Resolves model names and specs to chat models.

    Args:
        aliases: server aliases: a spec (``{"provider", "model", "base_url", "api_key" or
            "api_key_env", "params"}``), a chat model, or a callable returning one.
        default: the alias ``{"ref": "default"}`` (and the name ``default``) stand for.
        allow_inline: whether documents may spell out their own provider specs.
        key_envs: environment variables a document's ``api_key_env`` may name.
        trusted_base_urls: origins (``https://host:port``) a document's ``base_url`` may use
            together with an API key.
        environ: where ``api_key_env`` is read (default ``os.environ``).
    """

    def __init__(
        self,
        aliases: Mapping[str, ModelSource] | None = None,
        *,
        default: str | None = None,
        allow_inline: bool = True,
        key_envs: frozenset[str] = frozenset({"OPENAI_API_KEY"}),
        trusted_base_urls: frozenset[str] = frozenset(),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.aliases = dict(aliases or {})
        self.default = default
        self.allow_inline = allow_inline
        self.key_envs = key_envs
        self.trusted_base_urls = frozenset(_origin(u) for u in trusted_base_urls)
        self.environ = environ if environ is not None else os.environ
        # Scripted fakes keep their place per (run, node) so a node that runs again in the
        # same run (a loop) continues the script; provider clients are shared.
        self._cache: OrderedDict[str, BaseChatModel] = OrderedDict()
        self._clients: WeakKeyDictionary[
            asyncio.AbstractEventLoop, OrderedDict[str, BaseChatModel]
        ] = WeakKeyDictionary()

    @classmethod
    def coerce(cls, value: Any) -> ModelFactory:
        """``value`` as a factory: a factory, a mapping of aliases, or None (no aliases)."""
        if isinstance(value, ModelFactory):
            return value
        return cls(dict(value or {}))

    def names(self) -> set[str]:
        """The server aliases (what documents may ``ref``)."""
        return set(self.aliases) | ({"default"} if self.default else set())

    def describe(self, model: str | Mapping[str, Any], document: Mapping[str, Any]) -> str:
        """A short name for records and messages (never a key or a URL)."""
        spec = self._resolve(model, document)
        if isinstance(spec, Mapping):
            return f"{spec.get('provider', '?')}:{spec.get('model', '')}".rstrip(":")
        return type(spec).__name__

    def create(
        self, model: str | Mapping[str, Any], document: Mapping[str, Any], *, scope: str = ""
    ) -> BaseChatModel:
        """The chat model for a node's ``model`` field.

        Args:
            model: an alias (document first, then server) or an inline spec.
            document: the workflow's ``models`` map.
            scope: identifies the (run, node) a scripted fake belongs to.

        Raises:
            ModelSpecError: (E001) unknown alias or a refused spec.
        """
        spec = self._resolve(model, document)
        if isinstance(spec, BaseChatModel):
            return spec
        if callable(spec) and not isinstance(spec, Mapping):
            return spec()
        provider = str(spec.get("provider") or "")
        key = json.dumps(spec, sort_keys=True, default=str)
        if provider == "fake":
            cache, key = self._cache, f"{scope}|{key}"
        else:
            # Provider clients hold connection pools bound to the event loop they were used
            # on; a second loop (another SyncRuntime, a notebook) gets clients of its own.
            try:
                cache = self._clients.setdefault(asyncio.get_running_loop(), OrderedDict())
            except RuntimeError:  # no loop (a sync caller): nothing is bound yet
                cache = self._cache
        hit = cache.get(key)
        if hit is None:
            hit = self._build(provider, spec)
            cache[key] = hit
            if len(cache) > _MAX_CACHED:
                cache.popitem(last=False)
        return hit

    # -- resolution ---------------------------------------------------------------------------

    def _server(self, name: str) -> ModelSource:
        if name == "default" and name not in self.aliases:
            if self.default is None:
                raise ModelSpecError("no default model is configured on this server")
            name = self.default
        if name not in self.aliases:
            raise ModelSpecError(f"model {name!r} is not a model alias of the workflow or server")
        return self.aliases[name]

    def _resolve(self, model: Any, document: Mapping[str, Any]) -> ModelSource:
        if isinstance(model, str):
            if model in document:
                return self._resolve(document[model], {})
            return self._trusted(self._server(model))
        if not isinstance(model, Mapping):
            raise ModelSpecError(f"a model is an alias or an object, not {type(model).__name__}")
        if "ref" in model:
            return self._with_overrides(model)
        if not self.allow_inline:
            raise ModelSpecError("this server allows no model specs in documents; use an alias")
        self._check_document_spec(model)
        spec = dict(model)
        if spec.get("base_url") and not spec.get("api_key_env"):
            spec["api_key"] = "EMPTY"  # never let the client fall back to the server's key
        return spec

    def _trusted(self, source: ModelSource) -> ModelSource:
        return dict(source) if isinstance(source, Mapping) else source

    def _with_overrides(self, model: Mapping[str, Any]) -> ModelSource:
        unknown = set(model) - _REF_OVERRIDES
        if unknown:
            raise ModelSpecError(
                f"a model with 'ref' may only override model and params, not {sorted(unknown)}"
            )
        base = self._server(str(model["ref"]))
        overrides = {k: v for k, v in model.items() if k != "ref"}
        if not overrides:
            return self._trusted(base)
        if not isinstance(base, Mapping):
            raise ModelSpecError(f"server model {model['ref']!r} cannot be overridden")
        _check_params(overrides.get("params") or {})
        params = {**(base.get("params") or {}), **(overrides.get("params") or {})}
        return {**base, **overrides, "params": params}

    def _check_document_spec(self, spec: Mapping[str, Any]) -> None:
        unknown = set(spec) - _DOCUMENT_KEYS
        if unknown:
            raise ModelSpecError(f"model spec fields {sorted(unknown)} are not allowed here")
        if not isinstance(spec.get("provider"), str):
            raise ModelSpecError("a model spec needs a 'provider'")
        _check_params(spec.get("params") or {})
        env, base_url = spec.get("api_key_env"), spec.get("base_url")
        if env is not None and env not in self.key_envs:
            raise ModelSpecError(f"api_key_env {env!r} is not one this server lets documents read")
        if base_url is not None:
            if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https"):
                raise ModelSpecError("base_url must be an http(s) URL")
            trusted = _origin(base_url) in self.trusted_base_urls
            if not trusted and (env is not None or spec.get("provider") != "openai"):
                raise ModelSpecError(
                    "a document's base_url may not receive a server API key; "
                    "use a server model alias for this endpoint"
                )

    # -- providers ----------------------------------------------------------------------------

    def _build(self, provider: str, spec: Mapping[str, Any]) -> BaseChatModel:
        params = dict(spec.get("params") or {})
        if provider == "fake":
            responses = spec.get("responses")
            if not isinstance(responses, list):
                raise ModelSpecError("a fake model needs a list of 'responses'")
            return ScriptedChatModel.from_responses(responses)
        if provider == "openai":
            return self._openai(spec, params)
        try:
            chat_models = importlib.import_module("langchain.chat_models")
        except ImportError:
            raise ModelSpecError(
                f"provider {provider!r} needs the `langchain` package (init_chat_model)"
            ) from None
        if spec.get("base_url"):
            params["base_url"] = spec["base_url"]
        model: BaseChatModel = chat_models.init_chat_model(
            spec.get("model"), model_provider=provider, **params
        )
        return model

    def _openai(self, spec: Mapping[str, Any], params: dict[str, Any]) -> BaseChatModel:
        try:
            module = importlib.import_module("langchain_openai")
        except ImportError:
            raise ModelSpecError(
                "provider 'openai' needs langchain-openai (pip install 'graph-runtime[openai]')"
            ) from None
        kwargs: dict[str, Any] = {"model": spec.get("model") or "gpt-4o-mini", **params}
        # The node's retry policy retries (with backoff); the SDK's own retries would multiply it.
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("stream_usage", True)
        # Our own client, not langchain-openai's process-wide cached one (bound to one loop).
        kwargs["http_async_client"] = httpx.AsyncClient(timeout=kwargs.get("timeout"))
        if spec.get("base_url"):
            kwargs["base_url"] = spec["base_url"]
        if spec.get("api_key") is not None:
            kwargs["api_key"] = spec["api_key"]
        elif spec.get("api_key_env"):
            value = self.environ.get(str(spec["api_key_env"]))
            if not value:
                raise ModelSpecError(f"environment variable {spec['api_key_env']} is not set")
            kwargs["api_key"] = value
        model: BaseChatModel = module.ChatOpenAI(**kwargs)
        return model


def _check_params(params: Any) -> None:
    if not isinstance(params, Mapping):
        raise ModelSpecError("model params must be an object")
    unknown = set(params) - DOCUMENT_PARAMS
    if unknown:
        raise ModelSpecError(f"model params {sorted(unknown)} are not allowed in documents")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


_DEFAULT_FACTORY = ModelFactory()


def model_factory(services: Mapping[str, Any]) -> ModelFactory:
    """The factory in ``services["models"]`` (a bare one when there is none)."""
    value = services.get("models")
    return _DEFAULT_FACTORY if value is None else ModelFactory.coerce(value)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def provider_error(exc: Exception, model: str) -> GraphRuntimeError:
    """A provider's exception as our error: timeouts E002, everything else E003.

    Rate limits (429) are E003 like other provider failures, so the node's ``retry`` policy
    (E002/E003 by default) retries them with its backoff.
    """
    if isinstance(exc, GraphRuntimeError):
        return exc
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    names = " ".join(type(e).__name__ for e in chain)
    detail = f"{type(exc).__name__}: {str(exc)[:300]}"
    if any(isinstance(e, TimeoutError) for e in chain) or "Timeout" in names:
        return RunTimeoutError(f"model {model} timed out ({detail})")
    status = next((s for s in map(_status, chain) if s is not None), None)
    if status == 429 or "RateLimit" in names:
        return NodeExecutionError(f"model {model} is rate limited (429): {detail}")
    where = f" (HTTP {status})" if status else ""
    return NodeExecutionError(f"model {model} failed{where}: {detail}")
