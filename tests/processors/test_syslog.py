"""The `syslog` processor against real sockets: a UDP server and a Unix datagram socket."""

from __future__ import annotations

import re
import socket

import pytest

from processors.base import ExecutionRecord, ProcessorConfigError, ProcessorError
from processors.syslog import FACILITY_CRON, SyslogProcessor, parse_address
from tests.processors.servers import receive_all, udp_syslog, unix_syslog

RECORD = ExecutionRecord(job_name="backup", execution_id="9", output="first\nsecond\n")


def test_it_sends_each_line_over_udp_with_facility_cron():
    processor = SyslogProcessor()
    with udp_syslog() as server:
        port = server.getsockname()[1]
        config = processor.validate({"address": f"127.0.0.1:{port}", "tag": "dkron"})

        where = processor.process(RECORD, config)
        messages = [m.decode() for m in receive_all(server, until=b"end")]

    info = FACILITY_CRON * 8 + 6
    assert len(messages) == 4
    host = socket.gethostname().split(".")[0]
    pattern = rf"<{info}>\w{{3}} [ \d]\d \d\d:\d\d:\d\d {re.escape(host)} dkron\[\d+\]: "
    assert all(re.match(pattern, m) for m in messages), messages
    assert messages[0].endswith("job=backup execution=9 status=success begin")
    assert messages[1].endswith("job=backup execution=9: first")
    assert messages[2].endswith("job=backup execution=9: second")
    assert messages[3].endswith("job=backup execution=9 end")
    assert where == f"syslog 127.0.0.1:{port}"


def test_it_sends_to_a_unix_datagram_socket_with_error_severity_on_failure(tmp_path):
    processor = SyslogProcessor()
    path = tmp_path / "log.sock"
    failed = ExecutionRecord(job_name="j", execution_id="1", output="boom\n", status="failed")
    with unix_syslog(path) as server:
        processor.process(failed, processor.validate({"address": str(path)}))
        messages = [m.decode() for m in receive_all(server, until=b" end")]

    err = FACILITY_CRON * 8 + 3
    assert all(m.startswith(f"<{err}>") for m in messages)
    assert any(m.endswith("job=j execution=1: boom") for m in messages)
    # A local socket gets no host name, as glibc's syslog() sends.
    assert re.match(rf"<{err}>\w{{3}} [ \d]\d \d\d:\d\d:\d\d dkron\[\d+\]: ", messages[0])


def test_a_long_line_is_split_into_several_messages():
    processor = SyslogProcessor()
    with udp_syslog() as server:
        port = server.getsockname()[1]
        record = ExecutionRecord(job_name="j", execution_id="1", output="x" * 10_000)
        processor.process(record, processor.validate({"address": f"udp://127.0.0.1:{port}"}))
        messages = receive_all(server, until=b" end")

    assert len(messages) == 2 + 3
    texts = [m.split(b"execution=1: ", 1)[1] for m in messages[1:-1]]
    assert [len(t) for t in texts] == [4000, 4000, 2000]
    assert b"".join(texts) == b"x" * 10_000


def test_a_missing_socket_is_a_delivery_error(tmp_path):
    processor = SyslogProcessor()
    config = processor.validate({"address": str(tmp_path / "nothing")})

    with pytest.raises(ProcessorError, match="syslog: cannot send"):
        processor.process(RECORD, config)


def test_the_default_address_is_dev_log():
    assert SyslogProcessor().validate({}).address == "/dev/log"
    assert SyslogProcessor().validate({"address": ""}).address == "/dev/log"


@pytest.mark.parametrize(
    "address", ["localhost", "host:port", "127.0.0.1:70000", "tcp//x:1", "tcp://x:1", 5]
)
def test_a_bad_address_is_refused_at_save(address):
    with pytest.raises(ProcessorConfigError) as info:
        SyslogProcessor().validate({"address": address})

    assert "address" in info.value.errors


def test_parse_address_accepts_paths_and_host_port():
    assert parse_address("/dev/log") == "/dev/log"
    assert parse_address("10.0.0.1:514") == ("10.0.0.1", 514)
    assert parse_address("udp://[::1]:514") == ("::1", 514)
