"""The outbound guard for processors: syslog (UDP) and fluent (TCP) aimed at 127.0.0.1 are
refused with DKRON_BLOCK_PRIVATE on and the socket receives nothing; the allow-list lets the
operator's collector through; and a fluent tag carrying CR/LF, the way one editor's job wrote a
key into a Redis on loopback, is refused when the job is saved."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from executors.netguard import Guard, parse_allow
from jobs.models import Job
from processors.base import (
    ExecutionRecord,
    ProcessorConfigError,
    ProcessorError,
    ProcessorOptions,
)
from processors.fluent import FluentConfig, FluentProcessor
from processors.syslog import SyslogProcessor
from tests.harness import require
from tests.listener import listening
from tests.web.api.helpers import assert_error, job_body

RECORD = ExecutionRecord(job_name="backup", execution_id="12", output="all good\n")
BLOCK = ProcessorOptions(outbound=Guard(block_private=True))


def test_syslog_over_udp_to_loopback_is_refused_and_nothing_arrives() -> None:
    with listening("udp") as listener:
        processor = SyslogProcessor(BLOCK)
        config = processor.validate({"address": f"udp://127.0.0.1:{listener.port}"})
        with pytest.raises(ProcessorError) as caught:
            processor.process(RECORD, config)
        time.sleep(0.2)

    assert f"refused to connect to 127.0.0.1:{listener.port} (loopback" in str(caught.value)
    assert listener.received == []


def test_fluent_to_loopback_is_refused_and_nothing_connects() -> None:
    with listening() as listener:
        processor = FluentProcessor(BLOCK)
        config = processor.validate({"host": "127.0.0.1", "port": str(listener.port)})
        with pytest.raises(ProcessorError) as caught:
            processor.process(RECORD, config)

    assert f"refused to connect to 127.0.0.1:{listener.port} (loopback" in str(caught.value)
    assert listener.received == []


def test_the_allow_list_lets_the_operator_s_collector_through() -> None:
    with listening("udp") as listener:
        guard = Guard(block_private=True, allow=parse_allow(f"localhost:{listener.port}"))
        processor = SyslogProcessor(ProcessorOptions(outbound=guard))
        processor.process(RECORD, processor.validate({"address": f"localhost:{listener.port}"}))
        deadline = time.monotonic() + 2
        while len(listener.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)

    assert any("all good" in line for line in listener.received)


# --- CR/LF in values sent as text --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def loopback_redis() -> Iterator[redis.Redis]:
    """A private redis-server, as the broker Redis often is: reachable on loopback."""
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield client
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.django_db
def test_a_fluent_tag_with_crlf_aimed_at_redis_is_refused_at_save_time(api, loopback_redis):
    port = loopback_redis.connection_pool.connection_kwargs["port"]
    tag = "x\r\nSET injected_by_editor yes\r\n"
    processors = {"fluent": {"host": "127.0.0.1", "port": str(port), "tag": tag}}

    response = api.post("/v1/jobs", job_body("inject", processors=processors), format="json")

    body = assert_error(response, 400)
    assert "control characters" in body["details"]["processors.fluent.tag"]
    assert not Job.objects.exists()
    assert loopback_redis.get("injected_by_editor") is None


def test_the_crlf_tag_would_indeed_write_into_that_redis(loopback_redis):
    # The control for the test above: the same tag, past validation, does reach Redis.
    port = loopback_redis.connection_pool.connection_kwargs["port"]
    tag = "x\r\nSET injected_by_editor yes\r\n"
    config = FluentConfig.model_construct(host="127.0.0.1", port=port, tag=tag, timeout=2.0)
    FluentProcessor().process(RECORD, config)

    deadline = time.monotonic() + 2
    while loopback_redis.get("injected_by_editor") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loopback_redis.get("injected_by_editor") == b"yes"


@pytest.mark.parametrize(
    ("processor", "raw", "key"),
    [
        (FluentProcessor, {"tag": "a\nb"}, "tag"),
        (FluentProcessor, {"tag": "a\x00b"}, "tag"),
        (SyslogProcessor, {"tag": "a\rb"}, "tag"),
        (SyslogProcessor, {"address": "udp://h:514\x00"}, "address"),
    ],
)
def test_control_characters_in_processor_values_are_refused_naming_the_key(
    processor, raw, key
) -> None:
    with pytest.raises(ProcessorConfigError) as caught:
        processor().validate(raw)
    assert "control characters" in caught.value.errors[key]
