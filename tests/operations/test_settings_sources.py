"""Settings are read from the environment in one place, and every variable read is documented:
a new variable cannot be forgotten in .env.example, nor read somewhere else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.harness import ROOT

SETTINGS_MODULES = [ROOT / "dkronweb" / "settings.py", ROOT / "dkronweb" / "env.py"]
READERS = {
    "env",
    "env_bool",
    "env_choice",
    "env_duration",
    "env_float",
    "env_int",
    "env_json_object",
    "env_list",
    "env_secret",
}
# Reads of the process environment that are not dkronweb settings, each with its reason.
NOT_SETTINGS = {
    # The test settings choose their database (and fall back to SQLite by hand, not in CI).
    ("dkronweb/settings_test.py", "DKRON_TEST_DATABASE"),
    ("dkronweb/settings_test.py", "CI"),
    ("dkronweb/settings_test.py", "DKRON_DATA_DIR"),
    # ... and keep an exported PostgreSQL URL out of the SQLite pass.
    ("dkronweb/settings_test.py", "DKRON_DATABASE_URL"),
}


def variables_read() -> tuple[set[str], set[str]]:
    """(every variable the settings read, those that may come from a NAME_FILE as well)."""
    names, files = set(), set()
    for path in SETTINGS_MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in READERS or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
                secret = any(
                    k.arg == "secret" and isinstance(k.value, ast.Constant) and k.value.value
                    for k in node.keywords
                )
                if node.func.id == "env_secret" or secret:
                    files.add(first.value)
    return names, files


def documented() -> set[str]:
    """Names set in .env.example, as `NAME=value` or commented out as `# NAME=value`."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_the_scan_finds_the_settings_variables():
    names, files = variables_read()
    assert {"DKRON_AUTH_ENABLED", "DKRON_HISTORY_MAX_AGE", "DKRON_AGENT_SERVER"} <= names
    assert {"DKRON_SECRET_KEY", "DKRON_ENCRYPTION_KEY", "DKRON_ADMIN_PASSWORD"} <= files


def test_every_variable_the_settings_read_is_in_env_example():
    names, _ = variables_read()
    missing = sorted(names - documented())
    assert not missing, f"add to .env.example with its default and meaning: {missing}"


def test_every_variable_in_env_example_is_read_by_the_settings():
    names, _ = variables_read()
    stale = sorted(documented() - names)
    assert not stale, f"in .env.example but read by no setting: {stale}"


def test_every_secret_file_variant_is_in_env_example():
    _, files = variables_read()
    text = (ROOT / ".env.example").read_text()
    missing = sorted(name for name in files if f"{name}_FILE" not in text)
    assert not missing, f"say in .env.example that these take NAME_FILE: {missing}"


def is_read(node: ast.AST) -> bool:
    """os.environ.get(...), os.getenv(...), os.environ[...] (not a write) or `... in os.environ`."""
    if isinstance(node, ast.Call):
        return ast.unparse(node.func) in {"os.environ.get", "os.getenv"}
    if isinstance(node, ast.Subscript):
        return isinstance(node.ctx, ast.Load) and ast.unparse(node.value) == "os.environ"
    if isinstance(node, ast.Compare):
        return any(ast.unparse(c) == "os.environ" for c in node.comparators)
    return False


def environment_reads(path: Path) -> list[tuple[int, str]]:
    """(line, code) of each read of the process environment in a module (writes are fine)."""
    tree = ast.parse(path.read_text())
    return [(node.lineno, ast.unparse(node)) for node in ast.walk(tree) if is_read(node)]


def test_no_module_outside_the_settings_reads_a_setting_from_the_environment():
    """The roles and the core read django.conf.settings. Not scanned: executors/, which read
    DOCKER_HOST and PUBSUB_EMULATOR_HOST as their client libraries do, and the agent's own
    DKRON_AGENT_NAME/DKRON_AGENT_ID that jobs.node sets for shell jobs to inherit."""
    offenders = []
    for package in ["dkronweb", "jobs", "web", "scheduler", "agent"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if path in SETTINGS_MODULES or "/migrations/" in relative:
                continue
            for line, text in environment_reads(path):
                variable = re.search(r"['\"]([A-Z][A-Z0-9_]*)['\"]", text)
                if (relative, variable[1] if variable else "") not in NOT_SETTINGS:
                    offenders.append(f"{relative}:{line}: {text}")
    assert not offenders, "read these through django.conf.settings:\n" + "\n".join(offenders)
