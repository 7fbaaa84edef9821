"""Production sends secure cookies, HSTS and a Content-Security-Policy on the UI, trusts a
proxy's HTTPS header only when told, and `check --deploy` has nothing left to say but the
HTTPS redirect the operator chooses (issue 12, finding 12). Each is its own variable."""

from __future__ import annotations

import json

import pytest

from tests.operations.settings_process import clean_env, manage, production_env, python

PROBE = """
import json
from django.conf import settings
from django.test import Client
client = Client()
host = {"HTTP_HOST": "dkron.example.com" if settings.PRODUCTION else "127.0.0.1"}
ui = client.get("/ui/login/", secure=IS_HTTPS, **host, **EXTRA_META)
api = client.get("/v1/openapi.json", secure=IS_HTTPS, **host, **EXTRA_META)
cookie = ui.cookies.get("csrftoken")
print(json.dumps({
    "status": ui.status_code,
    "hsts": ui.get("Strict-Transport-Security"),
    "csp": ui.get("Content-Security-Policy"),
    "api_csp": api.get("Content-Security-Policy"),
    "csrf_cookie_secure": bool(cookie and cookie["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
}))
"""


def probe(env: dict[str, str], *, secure: bool = True, **extra: str) -> dict:
    code = PROBE.replace("IS_HTTPS", repr(secure)).replace("EXTRA_META", repr(extra))
    result = python(code, env)
    assert result.returncode == 0, result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_sends_hsts_secure_cookies_and_a_csp_on_the_ui(tmp_path):
    seen = probe(production_env(tmp_path))

    assert seen["status"] == 200
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert seen["csrf_cookie_secure"] and seen["session_cookie_secure"]
    policy = dict(part.strip().split(" ", 1) for part in seen["csp"].split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "unsafe-inline" not in seen["csp"] and "unsafe-eval" not in seen["csp"]
    assert seen["api_csp"] is None  # the UI's policy; the API and admin are left as they are


def test_a_proxys_https_header_counts_only_when_the_operator_names_it(tmp_path):
    forwarded = {"HTTP_X_FORWARDED_PROTO": "https"}
    # A plain-HTTP request claiming HTTPS: ignored unless a proxy is said to set the header.
    assert probe(production_env(tmp_path), secure=False, **forwarded)["hsts"] is None
    env = production_env(tmp_path, DKRON_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert probe(env, secure=False, **forwarded)["hsts"].startswith("max-age=31536000")


def test_each_production_header_can_be_turned_off_by_its_variable(tmp_path):
    env = production_env(
        tmp_path, DKRON_SECURE_COOKIES="false", DKRON_HSTS_SECONDS="0", DKRON_CSP="false"
    )
    seen = probe(env)
    assert seen["hsts"] is None and seen["csp"] is None
    assert not seen["csrf_cookie_secure"] and not seen["session_cookie_secure"]


def test_the_embedded_default_keeps_plain_http_cookies_and_still_has_the_csp(tmp_path):
    seen = probe(clean_env(tmp_path), secure=False)
    assert seen["status"] == 200 and seen["hsts"] is None
    assert not seen["csrf_cookie_secure"]
    assert "script-src 'self'" in seen["csp"]


def security_warnings(output: str) -> set[str]:
    return {
        line.split("(")[1].split(")")[0] for line in output.splitlines() if "(security." in line
    }


@pytest.mark.parametrize(
    ("extra", "left"),
    [({}, {"security.W008"}), ({"DKRON_SSL_REDIRECT": "true"}, set())],
)
def test_check_deploy_in_production_leaves_only_the_https_redirect_to_the_operator(
    tmp_path, extra, left
):
    result = manage("check", "--deploy", env=production_env(tmp_path, **extra))
    assert result.returncode == 0, result.stdout
    assert security_warnings(result.stdout) == left, result.stdout
