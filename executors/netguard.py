"""The outbound guard: refuse connections to non-public addresses (DKRON_BLOCK_PRIVATE), except
to what the operator allows (DKRON_OUTBOUND_ALLOW). Every executor, processor and notification
that opens a connection goes through the one `Guard` here.

Three ways of using it, strongest first:
- httpx (http executor, webhooks; the transports are in `executors.guarded_http`, so that
  reading the settings does not import httpx): the check sits where the connection is made,
  not where the URL is read, because only there is the address known:
  1. httpx hands each new connection (the first request and every redirect to a new origin) to
     httpcore, which asks its network backend to `connect_tcp(host, port)`.
  2. `GuardedBackend` resolves the host itself, refuses if ANY resolved address is not public
     (a name answering both a public and a private address is an attack, not a mistake), and
     connects to the checked address, never to the name: a second DNS answer (rebinding between
     check and connect) cannot change where the socket goes.
  3. TLS still verifies the certificate for the URL's host name, and the Host header is the
     URL's: httpcore takes both from the request, not from the address we connected to.
  Proxies from the environment are not used with a guarded client (a proxy would connect on our
  behalf, past the check); httpx ignores them when a transport is given.
- Our own sockets and libraries that take an address (syslog, fluent, SMTP, pika, grpc):
  `Guard.addresses` / `Guard.pin` resolve and check, and the socket goes to the checked address;
  TLS still names the original host. No race.
- Libraries that resolve names themselves (kafka-python, nats-py, boto3, the docker SDK, Google's
  Pub/Sub client): `Guard.check_host` resolves and checks every answer immediately before the
  library connects. The race that remains: a name whose DNS answer changes in the milliseconds
  between our lookup and the library's (rebinding with TTL 0) reaches the second answer; and
  kafka-python then connects to the brokers the cluster's metadata names, which only the
  bootstrap broker's operator controls. Allow-list such brokers by address, or keep jobs off
  hosts whose DNS you do not control.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OPEN",
    "AllowRule",
    "BlockedAddress",
    "Guard",
    "GuardError",
    "Unresolvable",
    "check_address",
    "parse_allow",
    "split_host_port",
]

SETTING = "DKRON_BLOCK_PRIVATE"
ALLOW_SETTING = "DKRON_OUTBOUND_ALLOW"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215, local-use translation
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible ::a.b.c.d
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT IPv4-translated
_TEREDO = ipaddress.ip_network("2001::/32")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed inside some sites
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


class GuardError(Exception):
    """The guard would not let a connection be made; `retryable` says if a retry may help."""

    retryable = False


class BlockedAddress(GuardError):
    """A connection the guard refused; not retryable (the address will not become public)."""

    def __init__(self, host: str, address: str, why: str, port: int | None = None) -> None:
        self.host, self.address, self.why, self.port = host, address, why, port
        where = f"[{address}]" if ":" in address else address
        if port is not None:
            where = f"{where}:{port}"
        shown = where if host.strip("[]") == address else f"{host} ({where})"
        super().__init__(
            f"refused to connect to {shown} ({why} address; {SETTING} is on and "
            f"{ALLOW_SETTING} does not list it)"
        )


class Unresolvable(GuardError):
    """The name did not resolve, so it could not be checked; a retry may find it."""

    retryable = True

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot resolve {host}: {reason}")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address tunnels or translates to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD
        return ip.sixtofour
    if ip in _NAT64 or ip in _TRANSLATED or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(address: str) -> str | None:
    """Why `address` may not be reached ("loopback", "private"...), or None if it is public.

    IPv6 forms that carry an IPv4 address (mapped, compatible, translated, 6to4, NAT64) are
    judged by that address; Teredo, local NAT64 and site-local are refused outright.
    """
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _TEREDO:
            return "Teredo tunnel"
        if ip in _NAT64_LOCAL:
            return "private"
        if ip in _SITE_LOCAL:
            return "site-local"
        embedded = _embedded_ipv4(ip)
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


@dataclass(frozen=True)
class AllowRule:
    """One DKRON_OUTBOUND_ALLOW entry: a network or a host name ("*.x" for its subdomains),
    with an optional port."""

    network: IPNetwork | None = None
    name: str = ""
    port: int | None = None

    def _port_ok(self, port: int | None) -> bool:
        return self.port is None or self.port == port

    def allows_name(self, host: str, port: int | None) -> bool:
        if not self.name or not self._port_ok(port):
            return False
        host = _normal_name(host)
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name

    def allows_address(self, address: str, port: int | None) -> bool:
        if self.network is None or not self._port_ok(port):
            return False
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        return ip.version == self.network.version and ip in self.network


def _normal_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _parse_port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{ALLOW_SETTING} entry {entry!r}: port {text!r} is not 1-65535")
    return int(text)


def _parse_rule(entry: str) -> AllowRule:
    port: int | None = None
    text = entry
    if text.startswith("["):  # [::1]:4222 or [fd00::]/8
        inside, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{ALLOW_SETTING} entry {entry!r}: expected [IPv6]:port")
        text, port = inside, _parse_port(rest[1:], entry) if rest else None
    elif text.count(":") == 1:  # host:port or a.b.c.d/n:port; a bare IPv6 has more colons
        text, _, port_text = text.partition(":")
        port = _parse_port(port_text, entry)
    try:
        return AllowRule(network=ipaddress.ip_network(text, strict=False), port=port)
    except ValueError:
        pass
    name = _normal_name(text)
    labels = name.removeprefix("*.").split(".")
    if not name or not all(
        label and len(label) < 64 and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    ):
        raise ValueError(
            f"{ALLOW_SETTING} entry {entry!r} is not a CIDR, an address or a host name, "
            "each with an optional :port (e.g. 10.0.0.0/8, kafka.internal:9092, [::1]:4222)"
        )
    return AllowRule(name=name, port=port)


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """("host", port) from "host:port", "[v6]:port" or a bare host (then `default_port`)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else default_port


def parse_allow(value: str | Iterable[str]) -> tuple[AllowRule, ...]:
    """Parse DKRON_OUTBOUND_ALLOW (a comma list or a list); ValueError names a bad entry."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(_parse_rule(item.strip()) for item in items if item.strip())


@dataclass(frozen=True)
class Guard:
    """The operator's outbound policy; with `block_private` off it lets everything through."""

    block_private: bool = False
    allow: tuple[AllowRule, ...] = ()

    @classmethod
    def from_settings(cls, dkron: Mapping[str, Any]) -> Guard:
        """From the DKRON settings: BLOCK_PRIVATE (or HTTP_BLOCK_PRIVATE), OUTBOUND_ALLOW."""
        block = dkron.get("BLOCK_PRIVATE") or dkron.get("HTTP_BLOCK_PRIVATE")
        allow = dkron.get("OUTBOUND_ALLOW") or ()
        rules = tuple(allow) if all(isinstance(r, AllowRule) for r in allow) else ()
        return cls(block_private=bool(block), allow=rules or parse_allow(allow))

    def allows_name(self, host: str, port: int | None) -> bool:
        """True if the operator listed this host name (every address it resolves to is fine)."""
        return any(rule.allows_name(host, port) for rule in self.allow)

    def check(self, host: str, address: str, port: int | None) -> None:
        """Raise BlockedAddress unless `address` (one answer for `host`) may be reached."""
        if not self.block_private or self.allows_name(host, port):
            return
        address = address.split("%", 1)[0]
        why = check_address(address)
        if why is not None and not any(r.allows_address(address, port) for r in self.allow):
            raise BlockedAddress(host, address, why, port)

    def addresses(
        self, host: str, port: int, *, kind: socket.SocketKind = socket.SOCK_STREAM
    ) -> list[tuple[Any, ...]]:
        """getaddrinfo for host:port, every answer checked (any refused one refuses all)."""
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=kind)
        except OSError as exc:
            raise Unresolvable(host, str(exc)) from None
        if not infos:
            raise Unresolvable(host, "no address")
        for info in infos:
            self.check(host, str(info[4][0]), port)
        return infos

    def check_host(self, host: str, port: int) -> None:
        """For libraries that connect by themselves: resolve and check right before they do.

        A no-op with the guard off. See the module docstring for the race that remains.
        """
        if self.block_private:
            self.addresses(host, port)

    def pin(self, host: str, port: int) -> str:
        """The checked address to connect to instead of `host` (the host itself if off)."""
        if not self.block_private:
            return host
        return str(self.addresses(host, port)[0][4][0])

    def create_connection(self, host: str, port: int, timeout: float | None) -> socket.socket:
        """socket.create_connection to a checked address of host:port."""
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in self.addresses(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        assert error is not None
        raise error


OPEN = Guard()
