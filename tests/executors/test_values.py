"""Go-compatible parsing of Dkron's string values: durations, sizes, booleans, command lines."""

import random
import shlex
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
    split_command,
)
from tests.scaling import assert_linear


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


# --- linear time: one large, legal value must not freeze the server ---------------------------


def test_a_long_duration_is_parsed_in_linear_time() -> None:
    assert_linear(lambda n: lambda: parse_go_duration("1ns" * (n // 3)), small=60_000)


def test_a_duration_with_huge_digit_runs_is_rejected_or_read_without_quadratic_work() -> None:
    with pytest.raises(ValueError, match="longer than Go allows"):
        parse_go_duration("1" * 1_500_000 + "s")
    # Go ignores fraction digits that cannot matter; so do we (int() of them is quadratic).
    assert parse_go_duration("1." + "0" * 1_500_000 + "s") == timedelta(seconds=1)
    assert_linear(lambda n: lambda: parse_go_duration("1." + "5" * n + "s"))


def test_a_size_with_a_megabyte_of_digits_is_rejected_quickly() -> None:
    with pytest.raises(ValueError, match="larger than 2\\^63 bytes"):
        parse_size("1" * 1_500_000)
    assert parse_size("0" * 100 + "512MB") == 512 * 1024**2  # leading zeros are not digits
    assert_linear(lambda n: lambda: _rejected(parse_size, "9" * n))


def _rejected(parse: object, value: str) -> None:
    with pytest.raises(ValueError):
        parse(value)  # type: ignore[operator]


# --- command lines (shell and docker with a string command) -----------------------------------


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("printf '%s|' \"a b\" c", ["printf", "%s|", "a b", "c"]),
        ("echo a | tr a b", ["echo", "a", "|", "tr", "a", "b"]),
        ("a'b c'd", ["ab cd"]),
        ("'' x \"\"", ["", "x", ""]),
        ('"a\\"b\\\\c\\$d"', ['a"b\\c\\$d']),
        ("a\\ b \\'c", ["a b", "'c"]),
        ("  \t\r\n  ", []),
        ("x\vy\u00a0z", ["x\vy\u00a0z"]),  # only space, tab, CR and LF separate words
    ],
)
def test_command_lines_split_as_shlex_does(line: str, argv: list[str]) -> None:
    assert split_command(line) == argv == shlex.split(line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("echo 'open", "No closing quotation"),
        ('a "b\\', "No escaped character"),
        ("a\\", "No escaped character"),
    ],
)
def test_bad_command_lines_raise_shlexs_messages(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_command(line)


def test_command_line_splitting_matches_shlex_on_random_input() -> None:
    """The rules are shlex's (tests/executors/test_shell.py pins them); any drift shows here."""
    rng = random.Random(11)
    alphabet = "ab '\"\\\t\n\r#;|$`\x00\v\u00a0é"
    for _ in range(20_000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert _outcome(split_command, line) == _outcome(shlex.split, line), repr(line)


def _outcome(split: object, line: str) -> object:
    try:
        return split(line)  # type: ignore[operator]
    except ValueError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize(
    "make_line",
    [
        lambda n: "ab " * (n // 3),  # many words
        lambda n: "a" * n,  # one long word: shlex.split took 25 s for 1.5 MB
        lambda n: "'" + "a b" * (n // 3) + "'",  # one single-quoted word
        lambda n: '"' + 'a\\"b ' * (n // 5) + '"',  # double quotes with escapes
        lambda n: "\\x" * (n // 2),  # escapes outside quotes
    ],
    ids=["many-words", "one-word", "single-quoted", "double-quoted", "escapes"],
)
def test_splitting_a_large_command_line_is_linear(make_line: object) -> None:
    assert_linear(lambda n: lambda: split_command(make_line(n)))  # type: ignore[operator]
