"""Structured logs: DKRON_LOG_FORMAT=json prints one JSON object a line, and every line logged
while a run executes carries its job name and execution id (both formats)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from agent.runner import run_execution
from jobs.logcontext import execution_logging
from jobs.models import Execution
from jobs.services.runs import run_now
from tests.factories import agent, job

ROOT = Path(__file__).resolve().parents[2]


def handler_from_settings(fmt: str, stream: io.StringIO) -> logging.Handler:
    """A handler built from settings.LOGGING's formatter and filter, as dictConfig builds them."""
    conf = dict(settings.LOGGING["formatters"][fmt])
    formatter = import_string(conf.pop("()"))(**conf)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(import_string(settings.LOGGING["filters"]["execution"]["()"])())
    return handler


@pytest.fixture
def captured() -> Iterator[dict[str, io.StringIO]]:
    streams = {"json": io.StringIO(), "text": io.StringIO()}
    handlers = [handler_from_settings(fmt, stream) for fmt, stream in streams.items()]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    for h in handlers:
        root.addHandler(h)
    try:
        yield streams
    finally:
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(level)


def test_lines_about_a_run_carry_its_job_and_execution_in_json(transactional_db, captured):
    agent("n1")
    run_now(job=job("logged", executor_config={"command": "exit 3"}))
    execution = Execution.objects.get()
    logging.getLogger("dkronweb.test").info("before the run")

    run_execution(execution.pk, node_name="n1")

    lines = [json.loads(line) for line in captured["json"].getvalue().splitlines()]
    assert {"timestamp", "level", "logger", "message"} <= set(lines[0])
    assert "job" not in lines[0] and "execution" not in lines[0]
    about_run = [line for line in lines if line["logger"] == "dkronweb.runner"]
    assert [line["message"].split()[-1] for line in about_run] == ["started", "status=failed"]
    for line in lines[1:]:
        assert (line["job"], line["execution"]) == ("logged", execution.pk), line
        assert line["level"] == "INFO" and line["timestamp"].startswith("20")


def test_the_text_format_shows_them_too(transactional_db, captured):
    with execution_logging(job="nightly", execution=42):
        logging.getLogger("dkronweb.executions").warning("something about the run")
    logging.getLogger("dkronweb.executions").warning("something else")

    first, second = captured["text"].getvalue().splitlines()
    assert " WARNING dkronweb.executions job=nightly execution=42 something about the run" in first
    assert " WARNING dkronweb.executions something else" in second
    # the JSON handler saw the same records without the text format's helper attribute
    assert all("run_fields" not in line for line in captured["json"].getvalue().splitlines())


def test_explicit_extra_fields_win_over_the_context(captured):
    with execution_logging(job="outer", execution=1):
        logging.getLogger("dkronweb.x").info("x", extra={"job": "inner"})

    line = json.loads(captured["json"].getvalue())
    assert (line["job"], line["execution"]) == ("inner", 1)


def django_logs(log_format: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django, logging; django.setup(); "
        "from jobs.logcontext import execution_logging\n"
        "with execution_logging(job='j1', execution=7):\n"
        "    logging.getLogger('dkronweb.runner').info('hello')"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dkronweb.settings_test",
        "DKRON_LOG_FORMAT": log_format,
    }
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_dkron_log_format_json_configures_the_console_handler():
    done = django_logs("json")

    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello" and line["logger"] == "dkronweb.runner"
    assert (line["job"], line["execution"], line["level"]) == ("j1", 7, "INFO")


def test_an_unknown_log_format_is_refused_at_start():
    done = django_logs("xml")

    assert done.returncode != 0
    assert "DKRON_LOG_FORMAT='xml': expected text or json" in done.stderr
