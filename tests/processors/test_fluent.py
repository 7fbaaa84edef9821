"""The `fluent` processor against a real forward-protocol TCP server written for the test."""

from __future__ import annotations

import socket
import time

import pytest

from processors.base import ExecutionRecord, ProcessorConfigError, ProcessorError, ProcessorOptions
from processors.fluent import FluentProcessor
from tests.processors.servers import forward_server

RECORD = ExecutionRecord(
    job_name="backup", execution_id="12", output="all good\n", node_name="agent-a", attempt=2
)


def test_it_sends_one_message_mode_event_with_job_execution_and_output():
    with forward_server() as server:
        processor = FluentProcessor(ProcessorOptions(fluent_port=server.port))
        config = processor.validate({"tag": "dkron.jobs", "forward": "true"})

        where = processor.process(RECORD, config)
        [[tag, when, event]] = server.wait_for_events()

    assert tag == "dkron.jobs"
    assert abs(when - time.time()) < 60
    assert event["job"] == "backup"
    assert event["execution"] == "12"
    assert event["output"] == "all good\n"
    assert event["status"] == "success" and event["success"] is True
    assert event["node"] == "agent-a" and event["attempt"] == 2
    assert where == f"fluent 127.0.0.1:{server.port} tag dkron.jobs"


def test_the_operator_defaults_apply_when_the_job_sets_no_keys():
    with forward_server() as server:
        options = ProcessorOptions(
            fluent_host="127.0.0.1", fluent_port=server.port, fluent_tag="from-env"
        )
        processor = FluentProcessor(options)

        processor.process(RECORD, processor.validate({}))
        [[tag, _, event]] = server.wait_for_events()

    assert tag == "from-env"
    assert event["execution"] == "12"


def test_job_keys_override_the_operator_defaults():
    with forward_server() as server:
        processor = FluentProcessor(ProcessorOptions(fluent_host="192.0.2.1", fluent_port=1))
        config = processor.validate({"host": "127.0.0.1", "port": str(server.port)})

        processor.process(RECORD, config)

        assert server.wait_for_events()[0][0] == "dkron"


def test_a_refused_connection_is_a_delivery_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processor = FluentProcessor()
    config = processor.validate({"host": "127.0.0.1", "port": port, "timeout": "1s"})

    with pytest.raises(ProcessorError, match=f"fluent: cannot send to 127.0.0.1:{port}"):
        processor.process(RECORD, config)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"port": "http"}, "port"),
        ({"port": 0}, "port"),
        ({"timeout": "5 parsecs"}, "timeout"),
        ({"host": "a b"}, "host"),
        ({"tags": "x"}, "tags"),
    ],
)
def test_bad_config_is_refused_naming_the_key(raw, key):
    with pytest.raises(ProcessorConfigError) as info:
        FluentProcessor().validate(raw)

    assert key in info.value.errors


def test_dkron_string_values_are_accepted():
    config = FluentProcessor().validate({"port": "24225", "timeout": "5", "forward": "true"})

    assert (config.port, config.timeout, config.forward) == (24225, 5.0, True)
