"""SSRF protection for outbound HTTP: resolve once, check every address, connect to that address.

``PinnedTransport`` wraps httpx's transport. For each request (the ``http`` node sends each
redirect hop as a new request, so every hop is checked) it resolves the host, refuses if *any*
address is private, loopback, link-local, CGNAT, multicast, unspecified, reserved, a cloud
metadata address or an IPv6 form that embeds IPv4 (mapped, compatible, NAT64, 6to4, Teredo),
then connects to the checked address with the original ``Host`` header and TLS SNI, so a second
DNS answer (rebinding) never gets a say.

Settings (``services["http"]``): ``allow_hosts`` (hosts, or ``*.suffix``, that may reach
non-public addresses: intranet APIs), ``allow_private`` (turn the address check off: tests and
development; metadata addresses stay refused), ``only_allow_hosts`` (refuse every other host).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpx

from graph_runtime.errors import InputValidationError

__all__ = [
    "METADATA_ADDRESSES",
    "BlockedRequestError",
    "PinnedTransport",
    "Resolver",
    "SSRFPolicy",
    "address_problem",
    "host_matches",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) → addresses``; inject one in tests instead of using DNS."""

#: Instance metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, ECS, Alibaba): always refused.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_COMPAT = ipaddress.ip_network("::/96")


class BlockedRequestError(InputValidationError):
    """The request was refused by the SSRF policy (E001: retrying cannot help)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _COMPAT or any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a connection to ``ip`` is refused, or None when it is allowed."""
    embedded = _embedded_v4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if ip in METADATA_ADDRESSES or embedded in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    # `::` and `::1` sit in the IPv4-compatible range but are their own kind of address.
    if embedded is not None and int(ip) > 1:
        return "an IPv6 address that embeds an IPv4 address"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a CGNAT (shared) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for hit, why in checks if hit), None)


async def system_resolver(host: str, port: int) -> list[str]:
    """Addresses of ``host`` from the system resolver, in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``patterns`` (exact names, or ``*.suffix``)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class SSRFPolicy:
    """Which hosts and addresses outbound requests may reach."""

    allow_hosts: frozenset[str] = frozenset()
    """Hosts (or ``*.suffix``) that may resolve to non-public addresses."""
    allow_private: bool = False
    """Skip the address check for every host (metadata addresses stay refused)."""
    only_allow_hosts: bool = False
    """Refuse hosts that are not in ``allow_hosts``."""
    resolver: Resolver = system_resolver

    async def pin(self, url: httpx.URL) -> str:
        """The address to connect to for ``url``, after checking every address of its host.

        Raises:
            BlockedRequestError: the scheme, host or an address is refused.
        """
        if url.scheme not in ("http", "https"):
            raise BlockedRequestError(f"refused {url.scheme!r} URL: only http and https")
        host = url.host
        if not host:
            raise BlockedRequestError("refused a URL without a host")
        listed = host_matches(host, self.allow_hosts)
        if self.only_allow_hosts and not listed:
            raise BlockedRequestError(f"refused host {host!r}: it is not in http.allow_hosts")
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await self.resolver(
                    host, url.port or (443 if url.scheme == "https" else 80)
                )
            except OSError as exc:
                raise BlockedRequestError(f"cannot resolve host {host!r}: {exc}") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise BlockedRequestError(f"host {host!r} has no address")
        for ip in addresses:
            why = address_problem(ip, allow_private=self.allow_private or listed)
            if why is not None:
                raise BlockedRequestError(
                    f"refused {host!r}: it resolves to {ip}, {why} (SSRF protection; "
                    "allow it with the http_allow_hosts setting, GRAPH_RUNTIME_HTTP_ALLOW_HOSTS)"
                )
        return str(addresses[0])


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to addresses the policy checked."""

    def __init__(self, policy: SSRFPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check and pin the address, then send with the original Host header and SNI."""
        address = await self.policy.pin(request.url)
        host = request.url.host
        if address != host:
            # httpx already set the Host header from the original URL; TLS verifies the
            # certificate against the SNI name, so https stays bound to the real host name.
            request.url = request.url.copy_with(host=address)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()
