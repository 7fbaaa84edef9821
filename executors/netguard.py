"""SSRF guard: refuse outgoing HTTP connections to non-public addresses (DKRON_HTTP_BLOCK_PRIVATE).

The check sits where the connection is made, not where the URL is read, because only there is
the address known:
1. httpx hands each new connection (the first request and every redirect to a new origin) to
   httpcore, which asks its network backend to `connect_tcp(host, port)`.
2. `GuardedBackend` resolves the host itself, refuses if ANY resolved address is not public
   (a name answering both a public and a private address is an attack, not a mistake), and
   connects to the checked address, never to the name: a second DNS answer (rebinding between
   check and connect) cannot change where the socket goes.
3. TLS still verifies the certificate for the URL's host name, and the Host header is the URL's:
   httpcore takes both from the request, not from the address we connected to.
Proxies from the environment are not used with a guarded client (a proxy would connect on our
behalf, past the check); httpx ignores them when a transport is given.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

__all__ = [
    "BlockedAddress",
    "async_transport",
    "check_address",
    "sync_transport",
]

SETTING = "DKRON_HTTP_BLOCK_PRIVATE"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


class BlockedAddress(Exception):
    """A connection the guard refused; not retryable (the address will not become public)."""

    def __init__(self, host: str, address: str, why: str) -> None:
        self.host, self.address, self.why = host, address, why
        shown = address if host == address else f"{host} ({address})"
        super().__init__(f"refused to connect to {shown} ({why} address; {SETTING} is on)")


def check_address(address: str) -> str | None:
    """Why `address` may not be reached ("loopback", "private"...), or None if it is public."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None
        )
        if embedded is not None:
            ip = embedded
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"  # 169.254.169.254: cloud metadata services
    if ip.is_multicast:
        return "multicast"
    if ip in _UNIQUE_LOCAL:
        return "unique-local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if ip in _SHARED or not ip.is_global:
        return "reserved"
    return None


def _checked(host: str, infos: Iterable[tuple[Any, ...]]) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        why = check_address(address)
        if why is not None:
            raise BlockedAddress(host, address.split("%", 1)[0], why)
    if not addresses:
        raise httpcore.ConnectError(f"{host}: no address")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to checked public addresses."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for address in _checked(host, infos):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are refused while the guard is on")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend, connecting only to checked public addresses."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"{host}: name resolution timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for address in _checked(host, infos):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are refused while the guard is on")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def sync_transport(*, verify: ssl.SSLContext | bool = True) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`."""
    transport = httpx.HTTPTransport(verify=verify, trust_env=False)
    # httpx does not take a network backend; its pool is rebuilt with the same TLS context.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=transport._pool._ssl_context, network_backend=GuardedBackend()
    )
    return transport


def async_transport(*, verify: ssl.SSLContext | bool = True) -> httpx.AsyncHTTPTransport:
    """An httpx async transport whose connections go through `AsyncGuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context, network_backend=AsyncGuardedBackend()
    )
    return transport
