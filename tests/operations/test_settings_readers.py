"""dkronweb.env, the strict readers the settings use: what each accepts, and that anything else
raises ImproperlyConfigured naming the variable and its value."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from dkronweb import env as settings_env

NAME = "DKRON_TEST_VALUE"


@pytest.fixture
def setenv(monkeypatch):
    def set_value(raw: str, name: str = NAME) -> None:
        monkeypatch.setenv(name, raw)

    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(f"{NAME}_FILE", raising=False)
    return set_value


# --- durations: Go's syntax (executors.values.parse_go_duration) plus days and weeks -------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("1d12h", 36 * 3600.0),
        ("1.5d", 36 * 3600.0),
        ("90D", 90 * 86400.0),
        ("250MS", 0.25),
        ("1h1d", 25 * 3600.0),
        ("1.5", 1.5),
        (".5s", 0.5),  # Go accepts a fraction without a leading digit
        ("1500us", 0.0015),
        ("2µs", 0.000002),
    ],
)
def test_durations_take_go_syntax_days_and_weeks(setenv, raw, seconds):
    setenv(raw)
    assert settings_env.env_duration(NAME, 5.0) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "raw", ["6M", "1M30s", "+5s", "-0", "-5", "1e3", ".5", "5 s", "1.2.3d", "٣s"]
)
def test_durations_refuse_what_is_ambiguous_or_signed(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=f"^{NAME}="):
        settings_env.env_duration(NAME, 5.0)


def test_an_upper_case_m_is_refused_as_minutes_or_months(setenv):
    setenv("6M")
    with pytest.raises(ImproperlyConfigured, match="minutes or months"):
        settings_env.env_duration(NAME, 5.0)


def test_durations_agree_with_the_executors_parser(setenv):
    from executors.values import parse_go_duration

    for text in ["300ms", "1h30m", "1.5h", "45s", "2h45m30.5s"]:
        setenv(text)
        assert settings_env.env_duration(NAME, 0.0) == parse_go_duration(text).total_seconds()


# --- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1_000", "0x10", "1e3", "12.0", "-1", "٣"])
def test_a_whole_number_refuses_junk_and_negatives(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=f"^{NAME}="):
        settings_env.env_int(NAME, 1)


def test_a_whole_number_may_have_a_higher_minimum(setenv):
    setenv("0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        settings_env.env_int(NAME, 1, minimum=1)


@pytest.mark.parametrize(("raw", "value"), [(" 12 ", 12), ("+3", 3), ("0", 0)])
def test_a_whole_number_takes_plain_digits(setenv, raw, value):
    setenv(raw)
    assert settings_env.env_int(NAME, 1) == value


@pytest.mark.parametrize("raw", ["1_0.5", "infinity", "-0.5", "1.5s", "1e999"])
def test_a_number_refuses_junk_and_negatives(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=f"^{NAME}="):
        settings_env.env_float(NAME, 1.0)


@pytest.mark.parametrize(("raw", "value"), [("2.5", 2.5), (".5", 0.5), ("1e3", 1000.0)])
def test_a_number_takes_decimals_and_exponents(setenv, raw, value):
    setenv(raw)
    assert settings_env.env_float(NAME, 1.0) == value


# --- choices, lists, JSON ---------------------------------------------------------------


def test_a_choice_ignores_case_and_answers_its_own_spelling(setenv):
    setenv(" Warning ")
    assert settings_env.env_choice(NAME, "INFO", ("INFO", "WARNING")) == "WARNING"


def test_a_choice_refuses_anything_else_listing_the_choices(setenv):
    setenv("verbose")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}='verbose': expected INFO or DEBUG"):
        settings_env.env_choice(NAME, "INFO", ("INFO", "DEBUG"))


def test_a_list_drops_blanks(setenv):
    setenv("a, b,,c ,")
    assert settings_env.env_list(NAME) == ["a", "b", "c"]


@pytest.mark.parametrize("raw", ["[1]", '"x"', "{not json"])
def test_a_json_object_refuses_anything_else(setenv, raw):
    setenv(raw)
    with pytest.raises(ImproperlyConfigured, match=f"^{NAME}: "):
        settings_env.env_json_object(NAME)


# --- secrets from NAME_FILE ---------------------------------------------------------------


def test_a_secret_comes_from_its_file_without_the_trailing_newline(setenv, tmp_path):
    path = tmp_path / "secret"
    path.write_text("s3cret value\n")
    setenv(str(path), f"{NAME}_FILE")
    assert settings_env.env_secret(NAME) == "s3cret value"


def test_a_secret_list_file_may_hold_one_item_a_line(setenv, tmp_path):
    path = tmp_path / "keys"
    path.write_text("key-one\nkey-two\n")
    setenv(str(path), f"{NAME}_FILE")
    assert settings_env.env_list(NAME, secret=True) == ["key-one", "key-two"]


def test_a_secret_without_file_is_the_variable_or_the_default(setenv):
    assert settings_env.env_secret(NAME, "fallback") == "fallback"
    setenv("direct")
    assert settings_env.env_secret(NAME, "fallback") == "direct"


def test_a_secret_set_twice_is_refused(setenv, tmp_path):
    path = tmp_path / "secret"
    path.write_text("from-file")
    setenv("direct")
    setenv(str(path), f"{NAME}_FILE")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME} and {NAME}_FILE are both set"):
        settings_env.env_secret(NAME)


def test_an_unreadable_secret_file_is_refused_naming_it(setenv, tmp_path):
    setenv(str(tmp_path / "missing"), f"{NAME}_FILE")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}_FILE=.*missing.*cannot read it"):
        settings_env.env_secret(NAME)
