"""The `syslog` processor: send the output to syslog, facility cron, one message per line.

`address` is a Unix socket path (default /dev/log, as Dkron's local syslog) or `host:port` /
`udp://host:port` for a remote daemon over UDP. Messages follow RFC 3164 (`<PRI>timestamp host
tag[pid]: text`; local sockets omit the host, as glibc's syslog() does). The stdlib
SysLogHandler is not used because it swallows send errors, and a failed delivery must be seen.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from typing import Any

from pydantic import field_validator

from executors.netguard import Guard, GuardError
from executors.values import config_error, refuse_control
from processors.base import ExecutionRecord, Processor, ProcessorConfig, ProcessorError

__all__ = ["SyslogConfig", "SyslogProcessor", "parse_address"]

FACILITY_CRON = 9
SEVERITY_ERR = 3
SEVERITY_INFO = 6
DEFAULT_ADDRESS = "/dev/log"
MAX_LINE = 4000  # bytes of text per message; longer lines are split (UDP datagram limits)


def parse_address(value: str) -> str | tuple[str, int]:
    """A Unix socket path, or (host, port) for UDP."""
    value = value.strip()
    if value.startswith("/"):
        return value
    rest = value.removeprefix("udp://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    bad_host = not host or "/" in host or any(c.isspace() for c in host)
    if not sep or bad_host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f'address {value!r} must be a socket path such as "/dev/log" or host:port '
            '(UDP), e.g. "127.0.0.1:514"'
        )
    return host, int(port)


class SyslogConfig(ProcessorConfig):
    address: str = DEFAULT_ADDRESS
    tag: str = "dkron"

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_ADDRESS
        if not isinstance(value, str):
            raise config_error("address", "address must be a string")
        refuse_control("address", value)
        try:
            parse_address(value)
        except ValueError as exc:
            raise config_error("address", str(exc)) from None
        return value.strip()

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        refuse_control("tag", value)
        if not value or len(value) > 32 or any(c in value for c in " :[]\n"):
            raise config_error("tag", "tag must be 1-32 characters without spaces, ':' or '[]'")
        return value


def _chunks(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        data = line.encode("utf-8", "replace")
        while len(data) > MAX_LINE:
            out.append(data[:MAX_LINE].decode("utf-8", "ignore"))
            data = data[MAX_LINE:]
        out.append(data.decode("utf-8", "ignore"))
    return out


class SyslogProcessor(Processor):
    name = "syslog"
    description = "Send the output to syslog (facility cron)"
    config_schema = SyslogConfig

    def process(self, record: ExecutionRecord, config: Any) -> str:
        address = parse_address(config.address)
        severity = SEVERITY_INFO if record.success else SEVERITY_ERR
        pri = FACILITY_CRON * 8 + severity
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
        stamp = stamp[:4] + stamp[4:6].replace("0", " ", 1) + stamp[6:]  # "Jan  5", RFC 3164
        host = "" if isinstance(address, str) else socket.gethostname().split(".")[0] + " "
        head = f"<{pri}>{stamp} {host}{config.tag}[{os.getpid()}]: "
        ident = f"job={record.job_name} execution={record.execution_id}"
        lines = [f"{ident} status={record.status} begin"]
        lines += [f"{ident}: {line}" for line in _chunks(record.output)]
        lines.append(f"{ident} end")
        messages = [(head + line).encode("utf-8", "replace") for line in lines]
        try:
            if isinstance(address, str):
                self._send_unix(address, messages)
            else:
                self._send_udp(address, messages, self.options.outbound)
        except GuardError as exc:
            raise ProcessorError(f"syslog: {exc}") from None
        except OSError as exc:
            where = config.address
            raise ProcessorError(f"syslog: cannot send to {where}: {exc.strerror or exc}") from exc
        return f"syslog {config.address}"

    @staticmethod
    def _send_unix(path: str, messages: list[bytes]) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(5.0)  # a full receive queue blocks a datagram send
        try:
            try:
                sock.connect(path)
            except OSError as exc:
                if exc.errno != errno.EPROTOTYPE:
                    raise
                # A stream socket (some syslog daemons): NUL-terminated messages, as SysLogHandler.
                sock.close()
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(5.0)
                sock.connect(path)
                sock.sendall(b"".join(m + b"\x00" for m in messages))
                return
            for message in messages:
                sock.send(message)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    @staticmethod
    def _send_udp(address: tuple[str, int], messages: list[bytes], guard: Guard) -> None:
        # Every answer is checked and the datagrams go to the checked address.
        family, kind, proto, _, sockaddr = guard.addresses(
            address[0], address[1], kind=socket.SOCK_DGRAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            for message in messages:
                sock.sendto(message, sockaddr)
