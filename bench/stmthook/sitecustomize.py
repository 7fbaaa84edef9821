"""The benchmark's statement counter, loaded into its child processes through PYTHONPATH.

`python -m bench.run` puts this directory first on the children's PYTHONPATH and sets
DKBENCH_STMT_DIR; Python imports `sitecustomize` at start-up, and this one hooks Django's
`connection_created` signal to add an execute wrapper to every database connection. It counts
the statements each process sends (by their first keyword; `executemany` counts one per
parameter set) and writes the totals every 0.2 s to `<DKBENCH_STMT_DIR>/<role>-<pid>.json`
(written whole and renamed, so a reader never sees half a file, and a SIGKILL loses at most
the last 0.2 s). Forked children (Celery's prefork pool) start counting afresh under their own
pid. Without DKBENCH_STMT_DIR it does nothing; production code is not touched: the hook lives
only in the benchmark's processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

_DIR = os.environ.get("DKBENCH_STMT_DIR", "")
_ROLE = ""
_installed = False
_lock = threading.Lock()
_counts: Counter[str] = Counter()
_connects = [0]
_dirty = threading.Event()


def role() -> str:
    """What this process is, from its command line (the same for a pool's children)."""
    if _ROLE:
        return _ROLE
    args = [os.path.basename(a) for a in sys.argv]
    if sys.argv and sys.argv[0].endswith(os.path.join("bench", "run.py")):
        return "bench"
    if "manage.py" in args:
        for name in ("scheduler", "agent", "serve"):
            if name in args:
                return name
    if any("gunicorn" in a for a in args):
        return "web"
    if "beat" in args:
        return "stock-beat"
    if "worker" in args:
        return "celery-worker"
    return "other"


def _wrapper(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
    text = sql if isinstance(sql, str) else str(sql)
    words = text.lstrip(" (\n\t").split(None, 1)
    verb = words[0].upper() if words else "?"
    n = 1
    if many:
        try:
            n = len(params)
        except TypeError:
            n = 1
    with _lock:
        _counts[verb] += n
    _dirty.set()
    return execute(sql, params, many, context)


def total() -> int:
    """Statements this process has sent so far."""
    with _lock:
        return sum(_counts.values())


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # A new connection costs PostgreSQL a transaction of its own (it reads the catalogs):
    # counted apart from the statements.
    with _lock:
        _connects[0] += 1
    _dirty.set()
    if _wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(_wrapper)


def _write() -> None:
    with _lock:
        by_verb = dict(_counts)
        connects = _connects[0]
    data = {"role": role(), "pid": os.getpid(), "statements": sum(by_verb.values())}
    data["by_verb"] = by_verb
    data["connections"] = connects
    path = os.path.join(_DIR, f"{data['role']}-{os.getpid()}.json")
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def _flusher() -> None:
    while True:
        _dirty.wait()
        _dirty.clear()
        with contextlib.suppress(OSError):
            _write()
        time.sleep(0.2)


def _start() -> None:
    threading.Thread(target=_flusher, name="dkbench-stmt-flusher", daemon=True).start()


def _after_fork() -> None:
    global _lock, _dirty
    _lock = threading.Lock()
    _dirty = threading.Event()
    _counts.clear()
    _connects[0] = 0
    _start()


def install(directory: str, role: str = "") -> None:
    """Count this process's statements into `directory` (as `role`, else from argv)."""
    global _DIR, _ROLE, _installed
    _DIR, _ROLE = directory, role or _ROLE
    if _installed:
        return
    try:
        from django.db.backends.signals import connection_created
    except ImportError:
        return
    _installed = True
    connection_created.connect(_on_connection, weak=False, dispatch_uid="dkbench-stmt")
    os.register_at_fork(after_in_child=_after_fork)
    _start()


if _DIR:
    install(_DIR)
