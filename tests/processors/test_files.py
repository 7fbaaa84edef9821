"""The `files` processor: `<log_dir>/<job>/<execution id>.log`, confined to allowed directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processors.base import ExecutionRecord, ProcessorConfigError, ProcessorError, ProcessorOptions
from processors.files import FilesConfig, FilesProcessor


def record(**fields) -> ExecutionRecord:
    return ExecutionRecord(
        **{"job_name": "backup", "execution_id": "7", "output": "done\n", **fields}
    )


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def processor(allowed: Path, tmp_path: Path) -> FilesProcessor:
    return FilesProcessor(ProcessorOptions(log_dirs=(allowed, tmp_path / "other")))


def test_it_writes_the_output_under_the_first_allowed_dir_by_default(processor, allowed):
    where = processor.process(record(), processor.validate({}))

    path = allowed / "backup" / "7.log"
    assert where == str(path)
    assert path.read_text() == "done\n"
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)


def test_it_writes_under_the_jobs_log_dir_and_creates_missing_dirs(processor, allowed):
    config = processor.validate({"log_dir": str(allowed / "team" / "a"), "forward": "false"})

    processor.process(record(output="x" * 10), config)

    assert (allowed / "team" / "a" / "backup" / "7.log").read_text() == "x" * 10


def test_a_second_allowed_dir_may_be_chosen(processor, tmp_path):
    config = processor.validate({"log_dir": str(tmp_path / "other")})

    processor.process(record(), config)

    assert (tmp_path / "other" / "backup" / "7.log").exists()


def test_rerunning_an_execution_id_replaces_the_file(processor, allowed):
    processor.process(record(output="long old output\n"), processor.validate({}))
    processor.process(record(output="new\n"), processor.validate({}))

    assert (allowed / "backup" / "7.log").read_text() == "new\n"


@pytest.mark.parametrize(
    ("log_dir", "message"),
    [
        ("/etc", "not inside an allowed directory"),
        ("relative/logs", "absolute path"),
        ("{allowed}/../escape", "'..'"),
        ("{allowed}/a/../../escape", "'..'"),
    ],
)
def test_a_log_dir_outside_the_allowed_dirs_is_refused(processor, allowed, log_dir, message):
    with pytest.raises(ProcessorConfigError) as info:
        processor.validate({"log_dir": log_dir.format(allowed=allowed)})

    assert message in info.value.errors["log_dir"]


def test_a_symlink_leading_out_of_the_allowed_dir_is_refused_at_save(processor, allowed, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "link").symlink_to(outside)

    with pytest.raises(ProcessorConfigError) as info:
        processor.validate({"log_dir": str(allowed / "link")})

    assert "not inside an allowed directory" in info.value.errors["log_dir"]


def test_a_symlink_planted_after_the_save_is_refused_at_run_time(processor, allowed, tmp_path):
    config = processor.validate({"log_dir": str(allowed / "later")})
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "later").symlink_to(outside)

    with pytest.raises(ProcessorError, match="not inside an allowed directory"):
        processor.process(record(), config)
    assert list(outside.iterdir()) == []


def test_a_symlinked_job_dir_is_refused_at_run_time(processor, allowed, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "backup").symlink_to(outside)

    with pytest.raises(ProcessorError, match="outside the allowed directories"):
        processor.process(record(), processor.validate({}))
    assert list(outside.iterdir()) == []


def test_a_symlinked_log_file_is_not_followed(processor, allowed, tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    (allowed / "backup").mkdir()
    os.symlink(target, allowed / "backup" / "7.log")

    with pytest.raises(ProcessorError, match="cannot write"):
        processor.process(record(), processor.validate({}))
    assert target.read_text() == "keep"


@pytest.mark.parametrize("name", ["..", "a/b", ""])
def test_a_job_name_that_is_not_a_file_name_is_refused(processor, name):
    with pytest.raises(ProcessorError, match="cannot be used as a file name"):
        processor.process(record(job_name=name), FilesConfig())


def test_with_no_allowed_dirs_files_cannot_be_used():
    with pytest.raises(ProcessorConfigError) as info:
        FilesProcessor(ProcessorOptions(log_dirs=())).validate({})

    assert "DKRON_PROCESSOR_LOG_DIRS" in info.value.errors["log_dir"]


def test_an_unknown_key_is_named(processor):
    with pytest.raises(ProcessorConfigError) as info:
        processor.validate({"logdir": "/tmp"})

    assert info.value.errors == {"logdir": "unknown key"}
