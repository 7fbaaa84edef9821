"""`confidential` is the one place for secrets and needs no Django: the executors use it, and
a plugin host or script can mask, redact and open a config without settings."""

from __future__ import annotations

import subprocess
import sys

import confidential
from confidential import ENV, HEADERS, URL, Spec

M = confidential.MASK


def test_it_imports_without_django_or_celery() -> None:
    # A fresh interpreter: this test process has Django loaded already.
    code = (
        "import sys, confidential; "
        "bad = [m for m in ('django', 'celery', 'jobs', 'executors') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert out.stdout.strip() == "[]"


def test_masking_merging_and_redaction_agree_on_what_a_secret_is() -> None:
    spec = Spec(
        entries={"env": ENV, "headers": HEADERS},
        urls={"url": URL},
        destinations=frozenset({"url"}),
    )
    config = {
        "url": "https://u:pw-1234@api.example.com/x?api_key=k-5678&page=2",
        "env": "DB_PASSWORD=hunter2,GREETING=hello",
        "headers": ["Authorization: Bearer t-9012"],
    }

    shown = confidential.mask(spec, config)
    hidden = confidential.output_secrets(spec, config)

    assert shown == {
        "url": f"https://u:{M}@api.example.com/x?api_key={M}&page=2",
        "env": f"DB_PASSWORD={M},GREETING={M}",
        "headers": [f"Authorization: {M}"],
    }
    assert confidential.merge(spec, shown, config) == config
    # Output hides credential-named entries only: scrubbing "hello" would mangle the output.
    assert sorted(hidden) == ["Bearer t-9012", "hunter2", "k-5678", "pw-1234"]
    assert confidential.redact("hunter2 hello", hidden) == f"{M} hello"


def test_a_config_with_no_declaration_is_guessed_conservatively() -> None:
    spec = confidential.guess({"apiToken": "t", "env": "A=1", "host": "h"})

    assert spec.keys == {"apiToken"}
    assert dict(spec.entries) == {"env": ENV}
    assert spec.destinations == {"host"}
