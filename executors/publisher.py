"""The base of the message publishers (kafka, nats, rabbitmq, gcppubsub): one message, one limit.

Their client libraries block (a connect, a metadata lookup, an acknowledgement) and cannot be
interrupted from another thread, so a publish runs them in a worker thread while the caller
watches the kill signal and the deadline, and returns the moment either comes. Each publisher
is then its protocol: what it connects to, the publish itself, and the words for its failures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from executors.base import ExecutionContext, ExecutorError, check_outbound

__all__ = ["Publisher"]


class Publisher:
    """One publish of one message within a time limit.

    A subclass sets `prefix` (the executor's name, first in every message) and implements
    `publish` (run in the worker thread; blocking calls are fine, bounded by `remaining()`),
    `killed_text`, `timeout_error` and `describe` (the ExecutorError for an exception that
    `publish` raised). `endpoints` names what the client will connect to by itself.

    `run()` returns what `publish` returned, or raises ExecutorError: the outbound guard's
    refusal before anything connects; status "killed", not retryable, on a kill; status
    "timeout" at the deadline or when the agent's own time limit cancels the run; an
    ExecutorError that `publish` raised as it is; `describe(exc)` for any other exception.
    On a kill or timeout the worker is told to stop (`stopped()`, `abandon()`) and left to end
    by itself within the same deadline.
    """

    prefix: ClassVar[str] = ""
    poll_interval: ClassVar[float] = 0.1  # how often cancel and the deadline are checked
    # How long past the deadline the client may take to report its own timeout (it knows why).
    grace: ClassVar[float] = 0.0

    def __init__(self, ctx: ExecutionContext, timeout: float) -> None:
        self.ctx = ctx
        self.timeout = ctx.limit(timeout)
        self.deadline = time.monotonic() + self.timeout
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.stop = threading.Event()

    # --- the contract -------------------------------------------------------------------------
    def endpoints(self) -> Iterable[tuple[str, int]]:
        """The (host, port) pairs the client library connects to by itself."""
        return ()

    def publish(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def killed_text(self) -> str:  # pragma: no cover - interface
        """What the kill stopped, e.g. "publish to t was killed"."""
        raise NotImplementedError

    def timeout_error(self) -> ExecutorError:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self, exc: BaseException) -> ExecutorError:
        return ExecutorError(f"{self.prefix}: publish failed: {exc!r}")

    # --- hooks --------------------------------------------------------------------------------
    def check_endpoints(self) -> None:
        """Refuse the run before connecting when the outbound guard refuses an endpoint."""
        check_outbound(self.ctx, self.prefix, self.endpoints())

    def early_failure(self) -> ExecutorError | None:
        """A failure seen while the worker still runs, to end the run at once (e.g. a login the
        client retries until its timeout although it cannot pass)."""
        return None

    def abandon(self) -> None:
        """Make the worker's call in flight end (close its client); `stop` is set already."""

    def thread_name(self) -> str:
        return f"{self.prefix}-publish"

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> Any:
        self.check_endpoints()
        worker = threading.Thread(target=self._work, name=self.thread_name(), daemon=True)
        worker.start()
        try:
            while not self.done.is_set():
                if self.ctx.cancel.is_set():
                    if self.ctx.cancel.reason == "timeout":
                        raise self.timeout_error()
                    raise self.killed()
                early = self.early_failure()
                if early is not None:
                    raise early
                remaining = self.deadline + self.grace - time.monotonic()
                if remaining <= 0:
                    raise self.timeout_error()
                self.done.wait(min(self.poll_interval, remaining))
        finally:
            if not self.done.is_set():
                self.stop.set()
                self.abandon()
        if self.error is not None:
            raise self.failure(self.error) from None
        return self.result

    def killed(self) -> ExecutorError:
        return ExecutorError(
            f"{self.prefix}: {self.killed_text()}", retryable=False, status="killed"
        )

    def failure(self, exc: BaseException) -> ExecutorError:
        return exc if isinstance(exc, ExecutorError) else self.describe(exc)

    def stopped(self) -> bool:
        """True once the run was reported killed or timed out: the worker must not go on."""
        return self.stop.is_set() or self.ctx.cancel.is_set()

    def remaining(self) -> float:
        """Seconds left until the deadline (at least a millisecond: clients refuse zero)."""
        return max(0.001, self.deadline - time.monotonic())

    def _work(self) -> None:
        try:
            self.result = self.publish()
        except BaseException as exc:  # handed to the supervising thread
            self.error = exc
        finally:
            self.done.set()
