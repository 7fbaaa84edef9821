"""Webhook notifications: one HTTP request, retried with backoff on transient failures.

Transient: a timeout, a connection error, 429 or 5xx. Anything else (a 4xx, a redirect) is
permanent and not retried. Errors say what went wrong, never the URL or a header; `target`
is what a log line may name: the method, scheme and host (the path and query of a webhook URL
are often its secret, as with Slack or Teams).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from executors import netguard
from jobs.notifications import NotificationError

BACKOFF_CAP = 30.0


@dataclass
class Request:
    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0
    # The outbound guard (DKRON_BLOCK_PRIVATE, DKRON_OUTBOUND_ALLOW; executors.netguard).
    guard: netguard.Guard = field(default_factory=netguard.Guard)
    block_private: bool = False  # shorthand for guard=Guard(block_private=True)

    @property
    def target(self) -> str:
        """What may appear in a log line: method, scheme and host."""
        parts = urlsplit(self.url)
        return f"{self.method} {parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def send(request: Request, *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Deliver the request; returns the number of attempts it took or raises NotificationError."""
    # Imported here: every agent imports the notification service (runs settle there), and
    # only one that sends a webhook needs httpx (docs/agents.md, a light agent).
    import httpx

    from executors import guarded_http

    headers = dict(request.headers)
    if request.body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    attempts = request.retries + 1
    problem = ""
    guard = netguard.Guard(block_private=True) if request.block_private else request.guard
    transport = guarded_http.sync_transport(guard) if guard.block_private else None
    with httpx.Client(
        timeout=request.timeout, follow_redirects=False, transport=transport
    ) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.request(
                    request.method,
                    request.url,
                    headers=headers,
                    content=request.body.encode() if request.body else None,
                )
            except netguard.BlockedAddress as exc:
                raise NotificationError(str(exc), permanent=True) from None
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
                raise NotificationError(
                    f"not a valid request ({type(exc).__name__})", permanent=True
                ) from None
            except httpx.TimeoutException:
                problem = f"timed out after {request.timeout:g}s"
            except httpx.HTTPError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                code = response.status_code
                if 200 <= code < 300:
                    return attempt
                problem = f"answered HTTP {code}"
                if code != 429 and code < 500:
                    raise NotificationError(problem, permanent=True)
            if attempt < attempts:
                sleep(min(BACKOFF_CAP, request.backoff * 2 ** (attempt - 1)))
    raise NotificationError(f"{problem}, {attempts} attempt(s)")
