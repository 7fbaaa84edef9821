"""A light agent: starting one, and running shell jobs on it, imports no other executor's client
library (boto3, Google's, gRPC, kafka-python, nats, pika, docker) and none of the web role.

Nor the apps of the web role (the admin, sessions, messages, static files, DRF, the OpenAPI
generator, axes: `dkronweb.settings.WEB_ONLY_APPS`), nor OpenTelemetry, which redis-py would
import with itself (`dkronweb.celery`).

The agent is set up in a fresh interpreter the way `manage.py agent` does it (its command line,
so that settings choose the agent's apps; Django, the command's system checks, the Celery worker
with its bootstep and pool), without starting it, so no broker is needed. Memory is not asserted
here (docs/agents.md has the figures).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from django.core.checks import Tags

from agent.management.commands.agent import Command as AgentCommand
from executors import registry
from jobs.checks import AGENT, check_executors_import, check_executors_load

ROOT = Path(__file__).resolve().parents[2]

# Top-level modules (or packages within a namespace) of the optional executors' clients.
OTHER_CLIENTS = (
    "boto3",
    "botocore",
    "google.cloud",
    "google.pubsub_v1",
    "google.api_core",
    "google.protobuf",
    "grpc",
    "grpc_reflection",
    "kafka",
    "nats",
    "pika",
    "docker",
)
# The http executor's and webhooks' client, loaded with the first http job or webhook.
HTTP_CLIENT = ("httpx", "httpcore", "anyio")
WEB_ROLE = ("rest_framework.views", "drf_spectacular.openapi", "web.api.views", "web.ui.views")
# The web role's apps, which `manage.py agent` leaves out of INSTALLED_APPS, and OpenTelemetry.
WEB_APPS = (
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "axes",
    "web",
    "scheduler",
)
OPENTELEMETRY = ("opentelemetry",)

AGENT_SCRIPT = """
import json, sys

def loaded(names):
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in sys.modules))

names = json.loads(sys.argv[1])
sys.argv = ["manage.py", "agent"]  # what settings read to choose the agent's apps
import django
django.setup()
from django.apps import apps
from django.conf import settings
assert settings.AGENT_PROCESS
for label in ("jobs", "auth", "contenttypes", "django_celery_beat"):  # the models agents use
    apps.get_app_config(label)
from agent.management.commands.agent import Command
command = Command()
command.check(tags=command.requires_system_checks)  # what BaseCommand.execute runs first

from celery import current_app as app
worker = app.Worker(  # manage.py agent's worker (celeryd_init and all), set up, not started
    pool_cls="threads", concurrency=2, without_mingle=True, without_gossip=True,
    tag=("role=light",), node_name="light", hostname="light@test",
)
from agent import worker as agent_worker
assert agent_worker._step is not None, "the agent bootstep was not applied"
import agent.tasks  # what the worker runs (autodiscovered by name)

started = loaded(names)
assert "redis" in sys.modules  # imported by the worker, without OpenTelemetry

from executors import registry
from executors.base import ExecutionContext
from executors.output import OutputSink
for name in ("shell", "http"):
    registry.secret_spec(name, {})  # the runner asks this before running
shell = registry.get_executor("shell")
ctx = ExecutionContext(job_name="light", config=shell.validate({"command": "echo light"}),
                       output=OutputSink())
shell.execute(ctx)
assert ctx.output.text().strip() == "light", ctx.output.text()
after_shell = loaded(names)

registry.get_executor("kafka")  # a kafka job on this agent still works: it loads its client
after_kafka = loaded(names)
from google.cloud import pubsub_v1  # so does gcppubsub's, with the OpenTelemetry it imports
print(json.dumps({"started": started, "after_shell": after_shell, "after_kafka": after_kafka,
                  "after_pubsub": loaded(names)}))
"""


def _run_agent_script() -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_SKIP_CHECKS"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "dkronweb.settings_test")
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            AGENT_SCRIPT,
            json.dumps([*OTHER_CLIENTS, *HTTP_CLIENT, *WEB_ROLE, *WEB_APPS, *OPENTELEMETRY]),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_agent_and_its_shell_jobs_import_no_other_executors_client_nor_the_web_role():
    seen = _run_agent_script()
    assert seen["started"] == []
    # The script looked up the http executor's secrets too, which loads its client.
    assert [m for m in seen["after_shell"] if m not in HTTP_CLIENT] == []
    assert "kafka" in seen["after_kafka"]  # loaded on first use, as before
    assert "opentelemetry" in seen["after_pubsub"]  # hidden from redis-py only


def test_only_the_agent_command_leaves_the_web_apps_out():
    from dkronweb.settings import _agent_command

    assert _agent_command(["manage.py", "agent", "--pool", "threads"])
    assert _agent_command(["/srv/dkronweb/manage.py", "agent"])
    assert _agent_command(["/venv/bin/django-admin", "agent"])
    assert not _agent_command(["manage.py", "serve"])  # the agent beside the web role
    assert not _agent_command(["manage.py", "check"])
    assert not _agent_command(["manage.py"])
    assert not _agent_command(["/venv/bin/celery", "agent"])
    assert not _agent_command(["/venv/bin/pytest", "agent"])


def test_the_agent_command_runs_only_the_agents_checks():
    tags = set(AgentCommand.requires_system_checks)
    assert AGENT in tags
    assert not tags & {Tags.urls, Tags.templates, Tags.staticfiles, Tags.admin}


def test_the_shipped_executors_are_installed_and_import():
    for name in registry.available():
        assert registry.missing(name) == [], name
    assert check_executors_load(None) == []
    assert check_executors_import(None) == []


def test_a_missing_client_library_is_reported_without_importing_anything(monkeypatch):
    check_executors_load(None)  # plugins discovered, caches filled
    monkeypatch.setitem(registry.BUILTIN_REQUIREMENTS, "shell", ("psutil", "no_such_client.sub"))
    before = set(sys.modules)
    errors = check_executors_load(None)
    assert [e.id for e in errors] == ["dkron.W002"]
    assert "'shell'" in errors[0].msg and "no_such_client.sub" in errors[0].msg
    assert set(sys.modules) - before == set()


# --- BUILTIN_REQUIREMENTS keeps up with what the executors import -----------------------------

# Imported by every agent anyway (executors.base and the shared modules), so no executor's own.
SHARED = {"pydantic", "pydantic_core", "confidential", "executors", "anyio", "httpcore", "httpx"}


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(module: str, seen: set[str]) -> set[str]:
    """Every module `module` imports, anywhere in its code (function-level imports too),
    following dkronweb's own `executors.*` modules into theirs."""
    if module in seen or (source := _module_file(module)) is None:
        return set()
    seen.add(module)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("executors."):
                found |= _imports(name, seen)
            else:
                found.add(name)
    return found


def test_each_builtins_requirements_name_the_client_libraries_it_imports():
    for name, path in registry.BUILTIN_EXECUTORS.items():
        package = path.rpartition(".")[0]
        modules = {package}
        if package.count(".") > 1:  # executors.ecs.executor: the whole executors.ecs package
            parent = package.rpartition(".")[0]
            modules |= {f"{parent}.{p.stem}" for p in _module_file(parent).parent.glob("*.py")}
        imported: set[str] = set()
        for module in modules:
            imported |= _imports(module, set())
        third_party = {
            m
            for m in imported
            if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in SHARED
        }
        required = registry.BUILTIN_REQUIREMENTS.get(name, ())
        uncovered = {
            m for m in third_party if not any(m == r or m.startswith(r + ".") for r in required)
        }
        # A `from pkg import name` counts once, by its package.
        uncovered = {m for m in uncovered if m.rpartition(".")[0] not in uncovered}
        assert not uncovered, f"{name}: add to BUILTIN_REQUIREMENTS: {sorted(uncovered)}"
