"""The publishers' base (executors.publisher): a worker thread watched for a kill and a deadline.

A publisher here is a stand-in whose `publish` waits on an event the test controls: the base's
behaviour does not depend on any broker.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from executors.base import ExecutionContext, ExecutorError
from executors.netguard import Guard
from executors.output import OutputSink
from executors.publisher import Publisher


class Waiting(Publisher):
    prefix = "fake"
    poll_interval = 0.02

    def __init__(self, ctx: ExecutionContext, timeout: float, *, answer: Any = "id-1") -> None:
        super().__init__(ctx, timeout)
        self.release = threading.Event()
        self.answer = answer
        self.abandoned = False
        self.early: ExecutorError | None = None

    def endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", 9)]

    def publish(self) -> Any:
        self.release.wait(5)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    def killed_text(self) -> str:
        return "publish was killed"

    def timeout_error(self) -> ExecutorError:
        return ExecutorError(f"fake: timeout after {self.timeout:g}s", status="timeout")

    def abandon(self) -> None:
        self.abandoned = True
        self.release.set()

    def early_failure(self) -> ExecutorError | None:
        return self.early


def context(**fields: Any) -> ExecutionContext:
    return ExecutionContext(job_name="job", config=None, output=OutputSink(), **fields)


def test_it_returns_what_the_publish_returned() -> None:
    publisher = Waiting(context(), 5)
    publisher.release.set()
    assert publisher.run() == "id-1"
    assert not publisher.abandoned


def test_a_kill_ends_the_run_at_once_and_abandons_the_worker() -> None:
    ctx = context()
    publisher = Waiting(ctx, 5)
    threading.Timer(0.1, ctx.cancel.cancel, args=("killed",)).start()
    started = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        publisher.run()
    assert time.monotonic() - started < 1
    assert (caught.value.message, caught.value.status) == ("fake: publish was killed", "killed")
    assert not caught.value.retryable
    assert publisher.abandoned and publisher.stopped()


def test_the_agents_time_limit_is_reported_as_a_timeout() -> None:
    ctx = context()
    ctx.cancel.cancel("timeout")
    with pytest.raises(ExecutorError) as caught:
        Waiting(ctx, 5).run()
    assert caught.value.status == "timeout"


def test_the_deadline_is_the_config_timeout_capped_by_the_agents_default() -> None:
    publisher = Waiting(context(default_timeout=0.2), 5)
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=r"^fake: timeout after 0.2s$"):
        publisher.run()
    assert 0.15 < time.monotonic() - started < 1


def test_an_early_failure_ends_the_run_before_the_deadline() -> None:
    publisher = Waiting(context(), 5)
    publisher.early = ExecutorError("fake: login refused", retryable=False)
    with pytest.raises(ExecutorError, match="login refused"):
        publisher.run()
    assert publisher.abandoned


def test_an_executor_error_from_the_publish_passes_as_it_is_and_others_are_described() -> None:
    refused = ExecutorError("fake: too large", retryable=False)
    publisher = Waiting(context(), 5, answer=refused)
    publisher.release.set()
    with pytest.raises(ExecutorError) as caught:
        publisher.run()
    assert caught.value is refused
    other = Waiting(context(), 5, answer=OSError("boom"))
    other.release.set()
    with pytest.raises(ExecutorError, match=r"^fake: publish failed: OSError\('boom'\)$"):
        other.run()


def test_the_outbound_guard_refuses_before_anything_connects() -> None:
    publisher = Waiting(context(outbound=Guard(block_private=True)), 5)
    with pytest.raises(ExecutorError, match="^fake: ") as caught:
        publisher.run()
    assert not caught.value.retryable
    assert not publisher.done.is_set()  # the worker never started
