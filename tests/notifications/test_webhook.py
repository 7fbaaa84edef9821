"""The webhook sender against a real HTTP server: method, headers, body, retries, timeouts."""

from __future__ import annotations

import logging
import time

import pytest

from jobs.notifications import NotificationError
from jobs.notifications.webhook import Request, send


def test_it_sends_the_method_headers_and_body_it_was_given(receiver):
    attempts = send(
        Request(
            url=receiver.url + "/hooks/abc?x=1",
            method="PUT",
            headers={"X-Token": "s3cret", "Content-Type": "text/plain"},
            body="job failed",
        )
    )

    [request] = receiver.requests
    assert attempts == 1
    assert (request.method, request.path, request.text) == ("PUT", "/hooks/abc?x=1", "job failed")
    assert request.headers["X-Token"] == "s3cret"
    assert request.headers["Content-Type"] == "text/plain"


def test_a_body_without_a_content_type_is_sent_as_json(receiver):
    send(Request(url=receiver.url, body='{"a": 1}'))

    assert receiver.requests[0].headers["Content-Type"] == "application/json"


def test_a_500_is_retried_with_backoff_until_it_succeeds(receiver):
    receiver.answer(500, 503)
    slept: list[float] = []

    attempts = send(Request(url=receiver.url, body="x", retries=3, backoff=0.5), sleep=slept.append)

    assert attempts == 3
    assert len(receiver.requests) == 3
    assert slept == [0.5, 1.0]


def test_retries_run_out_with_an_error_naming_the_last_problem(receiver):
    receiver.answer(500, 500, 500)

    with pytest.raises(NotificationError) as error:
        send(Request(url=receiver.url, retries=2, backoff=0), sleep=lambda s: None)

    assert str(error.value) == "answered HTTP 500, 3 attempt(s)"
    assert error.value.permanent is False
    assert len(receiver.requests) == 3


def test_a_4xx_is_permanent_and_not_retried(receiver):
    receiver.answer(404)

    with pytest.raises(NotificationError) as error:
        send(Request(url=receiver.url, retries=3, backoff=0), sleep=lambda s: None)

    assert error.value.permanent is True
    assert len(receiver.requests) == 1


def test_a_429_is_retried(receiver):
    receiver.answer(429)

    assert send(Request(url=receiver.url, retries=1, backoff=0), sleep=lambda s: None) == 2


def test_a_slow_receiver_times_out_and_the_next_attempt_succeeds(receiver):
    receiver.answer(200, delay=2.0)
    started = time.monotonic()

    attempts = send(Request(url=receiver.url, timeout=0.3, retries=1, backoff=0))

    assert attempts == 2
    assert time.monotonic() - started < 1.9  # gave up on the slow answer
    assert len(receiver.requests) == 2


def test_a_timeout_on_every_attempt_is_an_error(receiver):
    receiver.answer(200, 200, delay=1.0)

    with pytest.raises(NotificationError, match="timed out after 0.2s"):
        send(Request(url=receiver.url, timeout=0.2, retries=1, backoff=0))


def test_a_closed_port_is_a_connection_error():
    from tests.notifications.receivers import free_port

    with pytest.raises(NotificationError, match="connection failed"):
        send(Request(url=f"http://127.0.0.1:{free_port()}/", retries=0))


def test_errors_never_name_the_url_or_headers_and_the_target_is_scheme_and_host(receiver, caplog):
    receiver.answer(403)
    url = receiver.url.replace("http://", "http://user:pw@") + "/T000/B000/XXXXSECRET?token=t0k"

    with caplog.at_level(logging.DEBUG), pytest.raises(NotificationError) as error:
        send(Request(url=url, headers={"Authorization": "Bearer hunter2"}, retries=0))

    message = str(error.value)
    assert message == "answered HTTP 403"
    assert Request(url=url).target == f"POST {receiver.url}"
    for secret in ("XXXXSECRET", "t0k", "hunter2", "pw@"):
        assert secret not in caplog.text
