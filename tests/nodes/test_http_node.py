from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from node_docs import chain, doc, runtime

from graph_runtime.models import ErrorCode, TaskStatus
from nodes._ssrf import BlockedRequestError, SSRFPolicy, address_problem

START = {"id": "start", "type": "input", "config": {}}
OUT = {"id": "out", "type": "output", "config": {}}
LOOPBACK = {"allow_hosts": ["127.0.0.1"]}


def http(**config: Any) -> dict[str, Any]:
    return {"id": "call", "type": "http", "config": config}


def wf(node: dict[str, Any]) -> dict[str, Any]:
    return doc([START, node, OUT], chain("start", "call", "out"))


async def run(tmp_path: Path, node: dict[str, Any], data: Any = None, **services: Any) -> Any:
    services.setdefault("http", LOOPBACK)
    async with runtime(tmp_path, **services) as rt:
        response = await rt.run(wf(node), data or {}, run_id="h")
        return response, await rt.steps("h")


async def test_get_json_with_query_headers_and_credential(tmp_path: Path, api_url: str) -> None:
    node = http(
        url=api_url + "/json",
        query={"q": "{{ state.ticket }}"},
        headers={"X-Run": "{{ run.id }}"},
        credential="kb_api",
        response={"format": "json", "output": "kb"},
    )
    creds = {"kb_api": {"bearer": "s3cret-token"}}
    response, steps = await run(tmp_path, node, {"ticket": "refund"}, credentials=creds)
    assert response.status is TaskStatus.COMPLETED, response.error
    kb = response.result["kb"]
    assert kb["query"] == {"q": "refund"} and kb["auth"] == "Bearer s3cret-token"
    assert kb["host"] == api_url.removeprefix("http://")
    assert steps[1].result["status"] == 200
    assert "s3cret" not in str(steps[1].result).replace(kb["auth"], "")


async def test_a_credential_bound_to_hosts_goes_nowhere_else(tmp_path: Path, api_url: str) -> None:
    creds = {"kb_api": {"header": "X-Key", "value": "k", "hosts": ["kb.internal"]}}
    node = http(url=api_url + "/json", credential="kb_api")
    response, _ = await run(tmp_path, node, credentials=creds)
    assert response.error_code is ErrorCode.VALIDATION_ERROR
    assert "may not be sent to '127.0.0.1'" in (response.error or "")


async def test_post_json_and_text_bodies(tmp_path: Path, api_url: str) -> None:
    node = http(
        method="POST",
        url=api_url + "/echo",
        body="{'ticket': state.ticket, 'n': 2}",
        response={"output": "echo"},
    )
    response, _ = await run(tmp_path, node, {"ticket": "t"})
    echo = response.result["echo"]
    assert json.loads(echo["body"]) == {"ticket": "t", "n": 2}
    assert echo["type"] == "application/json"
    node = http(method="PUT", url=api_url + "/echo", body="'raw text'", response={"output": "echo"})
    response, _ = await run(tmp_path / "b", node)
    assert response.result["echo"]["type"] == "text/plain; charset=utf-8"


async def test_text_response(tmp_path: Path, api_url: str) -> None:
    node = http(url=api_url + "/text", response={"format": "text", "output": "t"})
    response, _ = await run(tmp_path, node)
    assert response.result["t"] == "plain words"


async def test_non_2xx_is_e003_and_retried(tmp_path: Path, api_url: str) -> None:
    node = http(url=api_url + "/status/503")
    node["retry"] = {"max_attempts": 2, "initial_interval": 0.01, "jitter": False}
    response, steps = await run(tmp_path, node)
    assert response.status is TaskStatus.FAILED
    assert [s.error_code for s in steps[1:]] == [
        ErrorCode.EXECUTION_ERROR,
        ErrorCode.RETRY_EXHAUSTED,
    ]
    assert "HTTP 503" in (steps[1].error_message or "")


async def test_size_cap_and_timeout(tmp_path: Path, api_url: str) -> None:
    node = http(url=api_url + "/big", max_response_bytes=1000, response={"format": "text"})
    response, _ = await run(tmp_path, node)
    assert response.error_code is ErrorCode.EXECUTION_ERROR
    assert "limit is 1000" in (response.error or "")
    node = http(url=api_url + "/slow", timeout_seconds=0.2)
    response, _ = await run(tmp_path / "slow", node)
    assert response.error_code is ErrorCode.TIMEOUT_ERROR


async def test_redirects_are_followed_and_checked(tmp_path: Path, api_url: str) -> None:
    node = http(url=api_url + "/redirect?to=/json", response={"output": "r"})
    response, _ = await run(tmp_path, node)
    assert response.result["r"]["method"] == "GET"
    # The first hop is allowed (127.0.0.1 is allow-listed); `localhost` is not.
    port = api_url.rsplit(":", 1)[1]
    node = http(url=f"{api_url}/redirect?to=http://localhost:{port}/json")
    response, _ = await run(tmp_path / "2", node)
    assert response.error_code is ErrorCode.VALIDATION_ERROR
    assert "'localhost'" in (response.error or "") and "loopback" in (response.error or "")


async def test_loopback_is_refused_by_default(tmp_path: Path, api_url: str) -> None:
    response, steps = await run(tmp_path, http(url=api_url + "/json"), http={})
    assert response.status is TaskStatus.FAILED
    assert steps[1].error_code is ErrorCode.VALIDATION_ERROR
    assert "SSRF" in (steps[1].error_message or "")


async def test_the_checked_address_is_the_one_connected_to(tmp_path: Path, api_url: str) -> None:
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a rebinding resolver: second answer differs

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    port = api_url.rsplit(":", 1)[1]
    settings = {"allow_hosts": ["api.test"], "resolver": resolver}
    node = http(url=f"http://api.test:{port}/json", response={"output": "r"})
    response, _ = await run(tmp_path, node, http=settings)
    assert response.status is TaskStatus.COMPLETED, response.error
    assert response.result["r"]["host"] == f"api.test:{port}"  # Host kept, IP pinned


BLOCKED = [
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("169.254.10.1", "a link-local address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("100.64.0.1", "a CGNAT (shared) address"),
    ("224.0.0.1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::1", "a loopback address"),
    ("::", "an unspecified address"),
    ("fe80::1", "a link-local address"),
    ("fc00::1", "a private address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("ff02::1", "a multicast address"),
    ("::ffff:127.0.0.1", "an IPv6 address that embeds an IPv4 address"),
    ("::ffff:169.254.169.254", "a cloud metadata address"),
    ("::7f00:1", "an IPv6 address that embeds an IPv4 address"),
    ("64:ff9b::a00:1", "an IPv6 address that embeds an IPv4 address"),
    ("2002:a00:1::1", "an IPv6 address that embeds an IPv4 address"),
    ("240.0.0.1", "a private address"),
]


@pytest.mark.parametrize(("address", "why"), BLOCKED)
def test_blocked_ranges(address: str, why: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) == why


def test_public_addresses_pass_and_allow_private_keeps_metadata_out() -> None:
    for address in ("93.184.216.34", "2606:4700:4700::1111"):
        assert address_problem(ipaddress.ip_address(address)) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    metadata = ipaddress.ip_address("169.254.169.254")
    assert address_problem(metadata, allow_private=True) == "a cloud metadata address"


async def fixed(host: str, port: int) -> list[str]:
    return {"good.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.0.0.7"]}[host]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mixed.test/", "resolves to 10.0.0.7"),  # any bad address refuses the host
        ("http://[::ffff:10.0.0.1]/", "embeds an IPv4"),
        ("ftp://good.test/", "only http and https"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
    ],
)
async def test_policy_refusals(url: str, message: str) -> None:
    with pytest.raises(BlockedRequestError, match=message):
        await SSRFPolicy(resolver=fixed).pin(httpx.URL(url))


async def test_policy_pins_and_allow_lists() -> None:
    policy = SSRFPolicy(resolver=fixed)
    assert await policy.pin(httpx.URL("https://good.test/x")) == "93.184.216.34"
    listed = SSRFPolicy(resolver=fixed, allow_hosts=frozenset({"*.test"}))
    assert await listed.pin(httpx.URL("http://mixed.test/")) == "93.184.216.34"
    only = SSRFPolicy(resolver=fixed, allow_hosts=frozenset({"good.test"}), only_allow_hosts=True)
    with pytest.raises(BlockedRequestError, match=r"not in http\.allow_hosts"):
        await only.pin(httpx.URL("http://other.test/"))
