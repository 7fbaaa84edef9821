"""Who is told when: the rules as tables of (rule, this run, previous run) -> notify?"""

from __future__ import annotations

import pytest

from jobs.notifications.rules import effective_rule, may_notify, should_notify


@pytest.mark.parametrize(
    ("rule", "status", "previous", "expected"),
    [
        ("always", "success", None, True),
        ("always", "failed", "failed", True),
        ("always", "partially_failed", "success", True),
        ("always", "skipped", "success", False),
        ("on_failure", "failed", "failed", True),
        ("on_failure", "partially_failed", None, True),
        ("on_failure", "success", "failed", False),
        ("on_success", "success", "success", True),
        ("on_success", "failed", "success", False),
        # on_change: the first failure after a success, the first success after a failure.
        ("on_change", "failed", "success", True),
        ("on_change", "partially_failed", "success", True),
        ("on_change", "success", "failed", True),
        ("on_change", "success", "partially_failed", True),
        ("on_change", "failed", "failed", False),
        ("on_change", "failed", "partially_failed", False),
        ("on_change", "success", "success", False),
        # A first run: a failure is news, a success is not.
        ("on_change", "failed", None, True),
        ("on_change", "success", None, False),
        ("on_change", "skipped", "failed", False),
        ("never", "failed", "success", False),
    ],
)
def test_the_rule_decides_from_this_run_and_the_previous_one(rule, status, previous, expected):
    assert should_notify(rule, status, previous) is expected


@pytest.mark.parametrize(
    ("job_rule", "default", "expected"),
    [
        (None, "never", "never"),
        (None, "on_failure", "on_failure"),
        ("on_success", "always", "on_success"),
        ("never", "always", "never"),
        (None, "", "never"),
        (None, "sometimes", "never"),
    ],
)
def test_the_jobs_rule_replaces_the_global_one(job_rule, default, expected):
    assert effective_rule(job_rule, default) == expected


GLOBAL_OFF = {"default_rule": "never", "email_enabled": True, "global_webhook": False}
HOOK = {"webhooks": [{"url": "http://x/"}]}


@pytest.mark.parametrize(
    ("snapshot", "status", "options", "expected"),
    [
        ({}, "failed", GLOBAL_OFF, False),
        ({"owner_email": "a@example.com"}, "failed", GLOBAL_OFF, False),
        ({"notify": {"on": "on_failure", **HOOK}}, "failed", GLOBAL_OFF, True),
        ({"notify": {"on": "on_failure", **HOOK}}, "success", GLOBAL_OFF, False),
        ({"notify": {"on": "on_change", **HOOK}}, "success", GLOBAL_OFF, True),
        ({"notify": {"on": "always", **HOOK}}, "skipped", GLOBAL_OFF, False),
        ({"notify": {"on": "always"}}, "failed", GLOBAL_OFF, False),  # nobody to tell
        (
            {"notify": {"on": "always"}, "owner_email": "a@example.com"},
            "failed",
            GLOBAL_OFF,
            True,
        ),
        (
            {"notify": {"on": "always"}, "owner_email": "a@example.com"},
            "failed",
            {**GLOBAL_OFF, "email_enabled": False},
            False,
        ),
        ({}, "failed", {**GLOBAL_OFF, "default_rule": "always", "global_webhook": True}, True),
        ({"notify": {"on": "never"}}, "failed", {**GLOBAL_OFF, "global_webhook": True}, False),
        ({"notify": "garbage"}, "failed", GLOBAL_OFF, False),
    ],
)
def test_the_settle_time_precheck_needs_only_the_snapshot(snapshot, status, options, expected):
    assert may_notify(snapshot, status, **options) is expected
