"""Go-compatible parsing of Dkron's string values: durations, sizes and booleans."""

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from executors.values import (
    GoBool,
    OptionalGoDuration,
    OptionalSize,
    format_go_duration,
    parse_bool,
    parse_go_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10s", timedelta(seconds=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("300ms", timedelta(milliseconds=300)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30.5)),
        ("1us", timedelta(microseconds=1)),
        ("1\u00b5s", timedelta(microseconds=1)),
        ("1\u03bcs", timedelta(microseconds=1)),
        ("1500ns", timedelta(microseconds=2)),  # rounded to timedelta's resolution
        (".5s", timedelta(milliseconds=500)),
        ("5.s", timedelta(seconds=5)),
        ("0", timedelta(0)),
        ("+5m", timedelta(minutes=5)),
        ("-5m", timedelta(minutes=-5)),
        (" 30s ", timedelta(seconds=30)),
    ],
)
def test_it_parses_go_durations(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("30", "missing unit"),
        ("1d", "unknown unit 'd'"),
        ("1H", "unknown unit 'H'"),
        ("abc", "invalid duration"),
        (".s", "invalid duration"),
        ("-", "invalid duration"),
        ("1h 30m", "unknown unit 'h '"),
        ("3000000h", "longer than Go allows"),
    ],
)
def test_it_rejects_what_go_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=10), "10s"),
        (timedelta(minutes=1, seconds=30), "1m30s"),
        (timedelta(hours=1), "1h0m0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=300), "300ms"),
        (timedelta(microseconds=1500), "1.5ms"),
        (timedelta(microseconds=2), "2\u00b5s"),
        (timedelta(seconds=-90), "-1m30s"),
    ],
)
def test_it_formats_durations_as_go_prints_them(value: timedelta, expected: str) -> None:
    assert format_go_duration(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1048576),
        (1024, 1024),
        ("512MB", 512 * 1024**2),
        ("512mb", 512 * 1024**2),
        ("512 M", 512 * 1024**2),
        ("1GB", 1024**3),
        ("1.5G", 1024**3 * 3 // 2),
        ("2K", 2048),
        ("2kb", 2048),
        ("1TB", 1024**4),
        ("10B", 10),
        ("64MiB", 64 * 1024**2),
    ],
)
def test_it_parses_sizes_1024_based(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid size"),
        ("0", "at least 1 byte"),
        ("0.1B", "at least 1 byte"),
        ("-5MB", "invalid size"),
        ("12XB", "unknown unit 'XB'"),
        ("MB", "invalid size"),
        ("512m b", "invalid size"),
    ],
)
def test_it_rejects_bad_sizes(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(text)


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_it_reads_gos_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_it_reads_gos_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "no", "on", "tRuE", ""])
def test_it_rejects_booleans_go_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid boolean"):
        parse_bool(text)


class _Model(BaseModel):
    flag: GoBool = False
    wait: OptionalGoDuration = None
    size: OptionalSize = None


def test_annotated_types_accept_dkron_strings_and_native_values() -> None:
    model = _Model.model_validate({"flag": "true", "wait": "1m", "size": "1KB"})
    assert (model.flag, model.wait, model.size) == (True, timedelta(minutes=1), 1024)
    model = _Model.model_validate({"flag": True, "wait": timedelta(seconds=2), "size": 5})
    assert (model.flag, model.wait, model.size) == (True, timedelta(seconds=2), 5)


def test_annotated_types_read_empty_strings_as_unset() -> None:
    model = _Model.model_validate({"flag": "", "wait": "", "size": ""})
    assert (model.flag, model.wait, model.size) == (False, None, None)


def test_annotated_types_report_the_parsers_message_verbatim() -> None:
    with pytest.raises(ValidationError) as info:
        _Model.model_validate({"flag": "yes", "wait": 30, "size": "1XB"})
    messages = {err["loc"][0]: err["msg"] for err in info.value.errors()}
    assert messages["flag"].startswith("invalid boolean 'yes'")
    assert messages["wait"] == 'missing unit in duration 30: write e.g. "30s"'
    assert messages["size"].startswith("unknown unit 'XB'")
