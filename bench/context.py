"""State shared by the phases of one benchmark run: sizes, infrastructure, processes, results."""

from __future__ import annotations

import contextlib
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import infra
from bench.config import Mode
from bench.infra import Infra
from bench.procs import Proc, stop_together
from bench.report import Row


@dataclass
class Context:
    mode: Mode
    infra: Infra
    log_dir: Path
    verbose: bool = True
    procs: dict[str, Proc] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(12345))
    started: float = field(default_factory=time.monotonic)

    def say(self, message: str) -> None:
        if self.verbose:
            print(
                f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True
            )

    def start(self, name: str, args: list[str], **env: str) -> Proc:
        proc = Proc(name, args, self.infra.env(**env), self.log_dir)
        self.procs[name] = proc
        return proc

    def stop(self, *names: str) -> None:
        """Stop these processes, all at once (SIGTERM to each first, then wait for each)."""
        stop_together([self.procs.pop(name) for name in names if name in self.procs])

    def stop_all(self) -> None:
        self.stop(*reversed(list(self.procs)))

    def finish(self, *, ok: bool, keep_logs: bool) -> None:
        """The end of every benchmark run, whatever happened: its processes stopped, its
        database and Redis keys dropped, its logs removed unless it failed or was asked to keep
        them (a failed run says where they are)."""
        self.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            infra.cleanup(self.infra)
        if ok and not keep_logs:
            shutil.rmtree(self.infra.data_dir, ignore_errors=True)
        else:
            print(f"bench: logs kept in {self.log_dir}", file=sys.stderr)

    def row(self, key: str, label: str) -> Row:
        if key not in self.rows:
            self.rows[key] = Row(key=key, label=label)
        return self.rows[key]
