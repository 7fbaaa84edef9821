"""The processor registry: lookup, plugins, disabling, validating and running a job's map."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processors import registry
from processors.base import ExecutionRecord, Processor, ProcessorError, ProcessorOptions
from processors.files import FilesProcessor
from processors.registry import (
    DisabledProcessor,
    UnknownProcessor,
    available,
    get_processor,
    run_processors,
    validate_processors,
)

CALLS: list[str] = []


class UpperProcessor(Processor):
    """A stand-in third-party plugin."""

    name = "upper"

    def process(self, record: ExecutionRecord, config: Any) -> str:
        CALLS.append(f"upper:{record.output.upper()}")
        return "nowhere"


class BrokenProcessor(Processor):
    name = "broken"

    def process(self, record: ExecutionRecord, config: Any) -> str:
        CALLS.append("broken")
        raise ProcessorError("destination down")


NotAProcessor = object


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install a distribution declaring entry points, the way a pip-installed plugin does."""
    dist = tmp_path / "dkronweb_test_processors-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dkronweb-test-processors\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\n"
        f"upper = {__name__}:UpperProcessor\n"
        f"broken = {__name__}:BrokenProcessor\n"
        "missing = no_such_module_xyz:Thing\n"
        f"bogus = {__name__}:NotAProcessor\n"
        f"log = {__name__}:UpperProcessor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.clear_cache()
    CALLS.clear()
    yield
    registry.clear_cache()


@pytest.fixture
def options(tmp_path: Path) -> ProcessorOptions:
    return ProcessorOptions(log_dirs=(tmp_path / "logs",))


def test_the_built_ins_are_listed():
    assert {"log", "files", "syslog", "fluent"} <= set(available())


def test_an_unknown_name_suggests_the_closest_known_one():
    with pytest.raises(UnknownProcessor) as info:
        get_processor("file")

    assert "unknown processor 'file'; did you mean 'files'?" in str(info.value)
    assert "fluent" in str(info.value)


def test_a_disabled_processor_is_refused_and_left_out_of_the_list():
    with pytest.raises(DisabledProcessor, match="disabled on this server"):
        get_processor("syslog", disabled={"syslog"})

    assert "syslog" not in available({"syslog"})


def test_the_instance_gets_the_operators_options(options):
    processor = get_processor("files", options)

    assert isinstance(processor, FilesProcessor) and processor.options is options


def test_plugins_load_from_the_entry_point_group_and_never_shadow_a_built_in(plugins):
    assert isinstance(get_processor("upper"), UpperProcessor)
    assert not isinstance(get_processor("log"), UpperProcessor)


def test_a_plugin_that_cannot_load_is_a_validation_error(plugins, options):
    errors = validate_processors({"missing": {}, "bogus": {}}, options)

    assert "cannot load no_such_module_xyz:Thing" in errors["processors.missing"]
    assert "is not a subclass" in errors["processors.bogus"]


def test_validation_names_each_bad_key(options):
    errors = validate_processors(
        {
            "files": {"log_dir": "/etc", "forward": "yes"},
            "fluent": {"port": "x"},
            "logg": {},
            "syslog": "udp",
        },
        options,
    )

    assert "not inside an allowed directory" in errors["processors.files.log_dir"]
    assert "invalid boolean 'yes'" in errors["processors.files.forward"]
    assert "port" in errors["processors.fluent.port"]
    assert "did you mean 'log'?" in errors["processors.logg"]
    assert "must be an object" in errors["processors.syslog"]


def test_a_valid_map_has_no_errors(options):
    assert validate_processors({"log": {"forward": "true"}, "files": {}}, options) == {}
    assert validate_processors({}, options) == {}
    assert validate_processors(None, options) == {}
    assert validate_processors({"log": None}, options) == {}


def test_a_disabled_processor_is_a_validation_error(options):
    errors = validate_processors({"log": {}}, options, disabled={"log"})

    assert "disabled" in errors["processors.log"]


RECORD = ExecutionRecord(job_name="j", execution_id="3", output="out\n")


def test_processors_run_in_name_order_and_a_failing_one_is_only_logged(plugins, options, caplog):
    with caplog.at_level(logging.WARNING):
        result = run_processors(
            {"upper": {"forward": "true"}, "broken": {"forward": "false"}}, RECORD, options
        )

    assert CALLS == ["broken", "upper:OUT\n"]
    assert result.failed == {"broken": "destination down"}
    assert result.delivered == {"upper": "nowhere"}
    assert "processor broken failed for job=j execution=3: destination down" in caplog.text
    # The only processor that would drop the output failed: the record keeps it.
    assert result.replace_output is False


def test_forward_false_on_a_delivering_processor_replaces_the_output(plugins, options):
    result = run_processors({"files": {}, "upper": {"forward": "true"}}, RECORD, options)

    assert result.replace_output is True
    path = options.log_dirs[0] / "j" / "3.log"
    assert result.pointer() == f"output sent to files: {path}; upper: nowhere"
    assert path.read_text() == "out\n"


def test_forward_true_everywhere_keeps_the_output(plugins, options):
    result = run_processors(
        {"upper": {"forward": "true"}, "files": {"forward": "1"}}, RECORD, options
    )

    assert result.replace_output is False


def test_an_unknown_or_disabled_processor_at_run_time_is_skipped(plugins, options):
    result = run_processors({"gone": {}, "upper": {}}, RECORD, options, disabled={"upper"})

    assert set(result.failed) == {"gone", "upper"}
    assert CALLS == []
