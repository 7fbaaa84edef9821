"""The Celery application: configured from Django settings (prefix CELERY_).

The agent role is wired in through Celery's own hooks, by name, so that importing the app (which
every Django process does, through `dkronweb/__init__`) imports no role and no model:
- the agent's bootstep is a dotted path that Celery loads when a worker starts, after its
  Django fixup has set Django up (`worker_init`);
- the tasks are found by `autodiscover_tasks` (`agent/tasks.py`), lazily;
- the worker's extra CLI options (`--tag`, `--node-name`) and the node-name rule are here, since
  Celery builds its command line from the app before any worker code runs.
The core publishes by task name (`jobs.dispatch`), so it never imports the agent either.

Celery's Django fix-up would run every system check when a worker or beat starts, and throw
the results away: for nothing, the URL check imports the whole web role (DRF, the UI, the
OpenAPI generator) and the executor check every executor's client library (gRPC, kafka-python,
pika...), about 35 MB of an idle agent's 154 (docs/agents.md). So it is told to skip them
(CELERY_SKIP_CHECKS, as `celery --skip-checks`; set it empty to have them back): `manage.py
agent` runs the agent's own checks (`jobs.checks.AGENT_TAGS`), `manage.py check` all of them.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from celery import Celery, signals
from click import Option

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dkronweb.settings")
os.environ.setdefault("CELERY_SKIP_CHECKS", "true")

app = Celery("dkronweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["agent"])
app.steps["worker"].add("agent.worker:AgentStep")
app.user_options["worker"].add(  # type: ignore[attr-defined]
    Option(("--tag",), multiple=True, help="Node tag key=value (repeatable)")
)
app.user_options["worker"].add(  # type: ignore[attr-defined]
    Option(
        ("--node-name",),
        default=None,
        help="Agent name (default DKRON_NODE_NAME); Celery's node name follows it "
        "(<name>@<host>) unless -n is given",
    )
)

app.user_options["worker"].add(  # type: ignore[attr-defined]
    Option(
        ("--slots",),
        type=int,
        default=None,
        help="Executions this agent runs at once (issue 16); the pool runs this many. "
        "Default: the pool's concurrency (-c)",
    )
)


@signals.celeryd_init.connect(weak=False)
def _celery_node_name(sender: Any = None, instance: Any = None, options: Any = None, **kw: Any):
    """`--node-name X` without `-n`: Celery's node name is `X@<host>`, not `celery@<host>`.

    celeryd_init comes before the worker sets up its queues and bootsteps, so everything
    (the banner, the pidbox that `celery status/inspect/control -d` address) uses it. An
    explicit `-n` wins: only Celery's default name is replaced.
    """
    from celery.utils.nodenames import default_nodename, nodename, nodesplit
    from django.conf import settings

    if instance is None or getattr(instance, "hostname", None) != default_nodename(None):
        return
    name = (options or {}).get("node_name") or settings.NODE_NAME
    instance.hostname = nodename(name, nodesplit(instance.hostname)[1])


@signals.celeryd_init.connect(weak=False)
def _redis_without_opentelemetry(**kw: Any) -> None:
    """A worker imports redis-py with OpenTelemetry hidden, so redis-py does not load it.

    redis-py (8.x) imports OpenTelemetry's metrics SDK at import time whenever it is installed
    (`redis.observability`, for metrics that must still be turned on in code: dkronweb never
    does), and it is installed as a requirement of google-cloud-pubsub: about 3 MB of every
    agent (docs/agents.md). redis-py has no switch for it; each of its imports is guarded by
    `except ImportError` (OTel absent: observability off). So, once, before the broker
    connection imports redis: `sys.modules["opentelemetry"] = None` makes an import of it
    raise ImportError (the import system's documented "None in sys.modules"), redis-py is
    imported, and the entry is removed: a gcppubsub job later imports OpenTelemetry as usual.
    celeryd_init is sent first thing by every worker, while it is the only thread (checked:
    another thread's import of OpenTelemetry would fail for that moment); nothing is done where
    redis-py or OpenTelemetry is loaded already, as in `celery -A dkronweb worker`, whose
    command group imports both before it starts the worker: `manage.py agent` is the light one.
    """
    if "redis" in sys.modules or "opentelemetry" in sys.modules or threading.active_count() > 1:
        return
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    try:
        import redis  # noqa: F401
    except ImportError:
        pass  # an AMQP-only install
    finally:
        del sys.modules["opentelemetry"]
