"""httpx transports whose connections go through the outbound guard (executors.netguard).

Apart from the guard's rules so that the settings, which parse DKRON_OUTBOUND_ALLOW with
`netguard`, do not import httpx, httpcore and anyio into every process: an agent that runs no
http job never loads them. How the check works: netguard's docstring.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore
import httpx

from executors.netguard import Guard

__all__ = ["AsyncGuardedBackend", "GuardedBackend", "async_transport", "sync_transport"]


def _checked(guard: Guard, host: str, port: int, infos: Iterable[tuple[Any, ...]]) -> list[str]:
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        guard.check(host, address, port)
    if not addresses:
        raise httpcore.ConnectError(f"{host}: no address")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to checked public addresses."""

    def __init__(self, guard: Guard) -> None:
        self._inner = httpcore.SyncBackend()
        self._guard = guard

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
        for address in _checked(self._guard, host, port, infos):
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

    def __init__(self, guard: Guard) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._guard = guard

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
        for address in _checked(self._guard, host, port, infos):
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


def sync_transport(
    guard: Guard | None = None, *, verify: ssl.SSLContext | bool = True
) -> httpx.HTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`."""
    transport = httpx.HTTPTransport(verify=verify, trust_env=False)
    # httpx does not take a network backend; its pool is rebuilt with the same TLS context.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=transport._pool._ssl_context,
        network_backend=GuardedBackend(guard or Guard(block_private=True)),
    )
    return transport


def async_transport(
    guard: Guard | None = None, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncHTTPTransport:
    """An httpx async transport whose connections go through `AsyncGuardedBackend`."""
    transport = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context,
        network_backend=AsyncGuardedBackend(guard or Guard(block_private=True)),
    )
    return transport
