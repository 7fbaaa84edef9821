"""The `log` processor: the output goes to the application log between begin/end markers."""

from __future__ import annotations

import logging

import pytest

from processors.base import ExecutionRecord
from processors.log import LOGGER_NAME, LogProcessor


def test_it_logs_the_output_between_markers_naming_the_job_and_execution(caplog):
    processor = LogProcessor()
    record = ExecutionRecord(job_name="backup", execution_id="42", output="line 1\nline 2\n")

    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        where = processor.process(record, processor.validate({}))

    [entry] = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert entry.levelno == logging.INFO
    text = entry.getMessage()
    assert text.startswith("----- BEGIN OUTPUT job=backup execution=42 status=success -----\n")
    assert "\nline 1\nline 2\n" in text
    assert text.endswith("----- END OUTPUT job=backup execution=42 -----")
    assert LOGGER_NAME in where


def test_a_failed_run_is_logged_as_a_warning(caplog):
    processor = LogProcessor()
    record = ExecutionRecord(job_name="j", execution_id="1", output="boom", status="failed")

    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        processor.process(record, processor.validate({"forward": "true"}))

    [entry] = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert entry.levelno == logging.WARNING
    assert "status=failed" in entry.getMessage() and "\nboom\n" in entry.getMessage()


@pytest.mark.parametrize(
    ("raw", "forward"),
    [
        ({}, False),
        ({"forward": "true"}, True),
        ({"forward": False}, False),
        ({"forward": ""}, False),
    ],
)
def test_forward_takes_dkron_string_values_and_defaults_to_false(raw, forward):
    assert LogProcessor().validate(raw).forward is forward
