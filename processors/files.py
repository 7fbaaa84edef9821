"""The `files` processor: write the output to `<log_dir>/<job>/<execution id>.log`.

`log_dir` comes from the job (Dkron's key) or is the first directory the operator allows
(setting PROCESSOR_LOG_DIRS). Whatever the job says, the file must end up inside an allowed
directory: `..` is refused, and the resolved path (symlinks followed) is checked when the job is
saved and again right before writing, since a symlink can appear after the save. The file itself
is opened with O_NOFOLLOW relative to its checked directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from processors.base import (
    ExecutionRecord,
    Processor,
    ProcessorConfig,
    ProcessorConfigError,
    ProcessorError,
)

__all__ = ["FilesConfig", "FilesProcessor"]

FILE_MODE = 0o640  # outputs may hold secrets: not world-readable
DIR_MODE = 0o750


class FilesConfig(ProcessorConfig):
    log_dir: str = ""


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(os.path.realpath(root)) for root in roots)


def _safe_component(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\x00" in value:
        raise ProcessorError(f"files: {what} {value!r} cannot be used as a file name")
    return value


class FilesProcessor(Processor):
    name = "files"
    description = "Write the output to <log_dir>/<job>/<execution id>.log"
    touches_hosts = True
    config_schema = FilesConfig

    def validate(self, raw: Any) -> FilesConfig:
        errors: dict[str, str] = {}
        config = None
        try:
            config = super().validate(raw)
        except ProcessorConfigError as exc:
            errors = dict(exc.errors)
        log_dir = (raw or {}).get("log_dir") or ""
        if "log_dir" not in errors and isinstance(log_dir, str):
            problem = self._check_dir(log_dir)
            if problem:
                errors["log_dir"] = problem
        if errors:
            raise ProcessorConfigError(errors)
        assert isinstance(config, FilesConfig)
        return config

    def _check_dir(self, log_dir: str) -> str:
        """Why `log_dir` may not be used, or "" when it may."""
        roots = self.options.log_dirs
        allowed = ", ".join(str(r) for r in roots) or "(none)"
        if not roots:
            return "no directory is allowed for files (set DKRON_PROCESSOR_LOG_DIRS)"
        if not log_dir:
            return ""
        path = Path(log_dir)
        if not path.is_absolute():
            return f"must be an absolute path inside an allowed directory ({allowed})"
        if ".." in path.parts:
            return "must not contain '..'"
        if "\x00" in log_dir:
            return "must not contain NUL"
        if not _inside(path, roots):
            return f"{log_dir!r} is not inside an allowed directory ({allowed})"
        return ""

    def process(self, record: ExecutionRecord, config: Any) -> str:
        problem = self._check_dir(config.log_dir)
        if problem:
            raise ProcessorError(f"files: log_dir: {problem}")
        base = Path(config.log_dir) if config.log_dir else self.options.log_dirs[0]
        job_dir = base / _safe_component(record.job_name, "job name")
        name = _safe_component(f"{record.execution_id}.log", "execution id")
        try:
            job_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise ProcessorError(f"files: cannot create {job_dir}: {exc.strerror or exc}") from exc
        # Checked after mkdir: a symlink planted at <log_dir>/<job> would lead elsewhere.
        if not _inside(job_dir, self.options.log_dirs):
            raise ProcessorError(f"files: {job_dir} resolves outside the allowed directories")
        path = job_dir / name
        try:
            dir_fd = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                    FILE_MODE,
                    dir_fd=dir_fd,
                )
            finally:
                os.close(dir_fd)
            with os.fdopen(fd, "wb") as fh:
                fh.write(record.output.encode("utf-8", "replace"))
        except OSError as exc:
            raise ProcessorError(f"files: cannot write {path}: {exc.strerror or exc}") from exc
        return str(path)
