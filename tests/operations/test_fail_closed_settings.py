"""Settings fail closed: a misspelt value stops start-up instead of meaning false, production
refuses auth off, debug and example keys, the embedded server answers loopback host names only,
and error pages never show a password even with debug on (issue 12, finding 7)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from dkronweb import env as settings_env
from dkronweb import settings as project_settings
from tests.harness import ROOT
from tests.operations.settings_process import (
    GOOD_KEY,
    clean_env,
    manage,
    production_env,
    python,
)

SHOW_AUTH = "from django.conf import settings; print('AUTH_ENABLED', settings.AUTH_ENABLED)"


@pytest.mark.parametrize("typo", ["flase", "enabled", "y", "ture", "off-ish", "0n"])
def test_a_misspelt_boolean_stops_start_up_instead_of_turning_auth_off(tmp_path, typo):
    result = python(SHOW_AUTH, clean_env(tmp_path, DKRON_AUTH_ENABLED=typo))
    assert "AUTH_ENABLED False" not in result.stdout
    assert result.returncode != 0
    assert f"ImproperlyConfigured: DKRON_AUTH_ENABLED={typo!r}" in result.stdout


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("TRUE", True), (" Yes ", True), ("on", True), ("1", True)]
    + [("false", False), ("No", False), ("OFF", False), ("0", False), ("", True)],
)
def test_booleans_accept_exactly_the_usual_spellings_in_any_case(monkeypatch, raw, value):
    monkeypatch.setenv("DKRON_TEST_FLAG", raw)
    assert settings_env.env_bool("DKRON_TEST_FLAG", True) is value


@pytest.mark.parametrize("raw", ["256k", "1,000", "nan", "inf", "ten"])
def test_a_malformed_number_is_refused_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("DKRON_TEST_NUMBER", raw)
    with pytest.raises(ImproperlyConfigured, match="DKRON_TEST_NUMBER"):
        settings_env.env_float("DKRON_TEST_NUMBER", 1.0)
    with pytest.raises(ImproperlyConfigured, match="DKRON_TEST_NUMBER"):
        settings_env.env_int("DKRON_TEST_NUMBER", 1)


def test_a_whole_number_setting_refuses_a_fraction(monkeypatch):
    monkeypatch.setenv("DKRON_TEST_NUMBER", "2.5")
    with pytest.raises(ImproperlyConfigured, match="expected a whole number"):
        settings_env.env_int("DKRON_TEST_NUMBER", 1)


def test_a_malformed_number_stops_start_up_with_its_name(tmp_path):
    result = python("", clean_env(tmp_path, DKRON_OUTPUT_LIMIT="256k"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: DKRON_OUTPUT_LIMIT='256k'" in result.stdout


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("DKRON_AGENT_SERVER", "nope", "expected true or false"),  # boolean
        ("DKRON_FIRE_BATCH", "1_000", "expected a whole number"),  # whole number
        ("DKRON_LEASE_TTL", "4s", "expected a number"),  # number
        ("DKRON_HISTORY_MAX_AGE", "6M", "could be minutes or months"),  # duration
        ("DKRON_HISTORY_MAX_AGE", "30 days", "expected a duration"),  # duration
        ("DKRON_LOG_LEVEL", "verbose", "expected DEBUG, INFO, WARNING"),  # choice
    ],
)
def test_a_bad_value_of_each_kind_stops_start_up_naming_it(tmp_path, variable, raw, message):
    result = python("", clean_env(tmp_path, **{variable: raw}))
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable}={raw!r}: " in result.stdout
    assert message in result.stdout


def test_a_webhook_headers_value_that_is_no_json_object_stops_start_up(tmp_path):
    result = python("", clean_env(tmp_path, DKRON_NOTIFY_WEBHOOK_HEADERS='["Authorization"]'))
    assert result.returncode != 0
    assert "ImproperlyConfigured: DKRON_NOTIFY_WEBHOOK_HEADERS: expected a JSON object" in (
        result.stdout
    )


def test_an_unreadable_secret_file_stops_start_up_naming_it(tmp_path):
    missing = tmp_path / "no-such-secret"
    result = python("", clean_env(tmp_path, DKRON_SECRET_KEY_FILE=str(missing)))
    assert result.returncode != 0
    assert f"ImproperlyConfigured: DKRON_SECRET_KEY_FILE={str(missing)!r}: cannot read it" in (
        result.stdout
    )


SHOW_SECRETS = """
from django.conf import settings
print("KEY", settings.SECRET_KEY)
print("FERNET", settings.DKRON["ENCRYPTION_KEYS"])
print("ADMIN", settings.DKRON["ADMIN_PASSWORD"])
"""


def test_production_takes_its_secrets_from_files(tmp_path):
    (tmp_path / "key").write_text(GOOD_KEY + "\n")
    (tmp_path / "fernet").write_text("first-key\nsecond-key\n")
    (tmp_path / "admin").write_text("admin-password-1\n")
    env = production_env(
        tmp_path,
        DKRON_SECRET_KEY="",
        DKRON_SECRET_KEY_FILE=str(tmp_path / "key"),
        DKRON_ENCRYPTION_KEY_FILE=str(tmp_path / "fernet"),
        DKRON_ADMIN_PASSWORD_FILE=str(tmp_path / "admin"),
    )
    result = python(SHOW_SECRETS, env)
    assert result.returncode == 0, result.stdout
    assert f"KEY {GOOD_KEY}\n" in result.stdout
    assert "FERNET ['first-key', 'second-key']" in result.stdout
    assert "ADMIN admin-password-1\n" in result.stdout


def test_a_misspelt_dkron_env_stops_start_up_instead_of_meaning_embedded(tmp_path):
    env = clean_env(tmp_path, DKRON_ENV="prod", DKRON_DEBUG="true", DKRON_AUTH_ENABLED="false")
    result = python(SHOW_AUTH, env)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DKRON_ENV='prod'" in result.stdout


# --- production refuses what is unsafe ------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"DKRON_DEBUG": "true"}, "DKRON_DEBUG is on"),
        ({"DKRON_AUTH_ENABLED": "false"}, "DKRON_AUTH_ENABLED=false"),
        ({"DKRON_SECRET_KEY": "change-me"}, "DKRON_SECRET_KEY is an example value"),
        ({"DKRON_SECRET_KEY": "Change-Me"}, "DKRON_SECRET_KEY is an example value"),
        ({"DKRON_SECRET_KEY": "short-but-not-an-example"}, "shorter than 32 characters"),
    ],
)
def test_production_refuses_to_start_when_unsafe(tmp_path, extra, reason):
    result = manage("check", env=production_env(tmp_path, **extra))
    assert result.returncode != 0, result.stdout
    assert "DKRON_ENV=production refuses to start" in result.stdout
    assert reason in result.stdout


def test_production_starts_with_auth_off_only_when_told_and_then_warns(tmp_path):
    env = production_env(
        tmp_path, DKRON_AUTH_ENABLED="false", DKRON_PRODUCTION_ALLOW_AUTH_OFF="true"
    )
    result = python(SHOW_AUTH, env)
    assert result.returncode == 0, result.stdout
    assert "AUTH_ENABLED False" in result.stdout
    assert "AUTHENTICATION IS OFF" in result.stdout
    assert "DKRON_PRODUCTION_ALLOW_AUTH_OFF=true" in result.stdout


def test_embedded_mode_still_turns_auth_off_with_a_warning(tmp_path):
    result = python(SHOW_AUTH, clean_env(tmp_path, DKRON_AUTH_ENABLED="false"))
    assert result.returncode == 0, result.stdout
    assert "AUTH_ENABLED False" in result.stdout and "AUTHENTICATION IS OFF" in result.stdout


def documented_secret_keys() -> set[str]:
    """Every DKRON_SECRET_KEY value written in the examples a reader may copy."""
    found = set()
    for name in [".env.example", "docker-compose.yml", "README.md", "dkronweb/settings_test.py"]:
        text = (ROOT / name).read_text()
        for value in re.findall(r"DKRON_SECRET_KEY[\"']?\s*[=:,]\s*[\"']?([^\s\"'\\]+)", text):
            # compose takes it from the operator's environment; the README generates one
            if not value.startswith(("${", "$(")):
                found.add(value)
    return found


def test_every_documented_example_key_is_refused_in_production():
    keys = documented_secret_keys()
    assert "change-me" in keys
    for key in keys:
        assert (
            key.lower() in project_settings.EXAMPLE_SECRET_KEYS
            or len(key) < project_settings.MIN_SECRET_KEY_LENGTH
        ), key


# --- the embedded server answers loopback host names only ---------------------------------

HOSTS = """
from django.test import Client
client = Client()
for host in ["rebind.attacker.example", "localhost:8080", "127.0.0.1:8080", "[::1]:8080"]:
    print(host, client.get("/ui/login/", HTTP_HOST=host).status_code)
"""


def test_the_embedded_default_refuses_a_foreign_host_header(tmp_path):
    """DNS rebinding: a web page's own name resolved to 127.0.0.1 must not reach the server."""
    result = python(HOSTS, clean_env(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "rebind.attacker.example 400" in result.stdout
    for host in ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"]:
        assert f"{host} 200" in result.stdout


def test_dkron_allowed_hosts_widens_the_embedded_default(tmp_path):
    env = clean_env(tmp_path, DKRON_ALLOWED_HOSTS="rebind.attacker.example")
    result = python(HOSTS, env)
    assert "rebind.attacker.example 200" in result.stdout, result.stdout


# --- error pages never show secrets ---------------------------------------------------------

BROKER = "redis://:broker-password-1@redis.internal:6379/0"
DATABASE = "postgres://dkron:database-password-1@db.internal:5432/dkron"
FRAME_URL = "amqp://worker:frame-password-1@rabbit:5672/"
WEBHOOK = "https://hooks.example.com/services/T000/B000/webhook-secret-1"


@pytest.mark.urls("tests.operations.boom_urls")
def test_a_debug_500_page_shows_no_password_or_secret(settings):
    settings.DEBUG = True
    settings.CELERY_BROKER_URL = BROKER
    settings.DATABASE_URL = DATABASE
    settings.DKRON = {
        **settings.DKRON,
        "ENCRYPTION_KEYS": ["fernet-key-secret-1"],
        "NOTIFY_WEBHOOK_URL": WEBHOOK,
        "NOTIFY_WEBHOOK_HEADERS": {"Authorization": "Bearer header-secret-1"},
    }
    client = Client(raise_request_exception=False)
    # wsgiref-based servers copy the process environment into every request's META.
    page = client.get(
        "/boom",
        headers={"X-Upstream": FRAME_URL},
        DKRON_BROKER_URL=BROKER,
        DKRON_DATABASE_URL=DATABASE,
        DKRON_SECRET_KEY="meta-secret-key-1",
    )
    body = page.content.decode()
    assert page.status_code == 500 and "RuntimeError" in body  # the debug page it is
    assert "CELERY_BROKER_URL" in body and "DKRON_BROKER_URL" in body
    for secret in [
        "broker-password-1",
        "database-password-1",
        "webhook-secret-1",
        "header-secret-1",
        "fernet-key-secret-1",
        "frame-password-1",
        "meta-secret-key-1",
    ]:
        assert secret not in body, secret
    assert re.search(r"amqp://worker:\*+@rabbit:5672/", body)  # the rest stays readable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:********@h:6379/0"),
        ("postgres://u:p/a:ss@db/x", "postgres://u:********@db/x"),
        (
            "see https://u:pw@a.example/x and amqp://v:pw2@b/",
            "see https://u:********@a.example/x and amqp://v:********@b/",
        ),
        ("https://a.example:8443/path", "https://a.example:8443/path"),
    ],
)
def test_passwords_in_urls_are_hidden_and_the_rest_kept(text, shown):
    from dkronweb.error_reports import hide_url_passwords

    assert hide_url_passwords(text) == shown
