"""Unit tests of lines → fields: CSV quoting and headers, JSON, regex and text lines, format choice, paths."""

from __future__ import annotations

import csv
import io
import re
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasync.errors import LineRejected
from datasync.ftp.parsers import (
    CsvParser,
    JsonParser,
    RegexParser,
    TextParser,
    format_for,
    header_names,
    make_parser,
    sniff_delimiter,
    sniff_format,
)
from datasync.ftp.paths import machine_from_path, path_matches

# ---------------------------------------------------------------- CSV


@pytest.mark.parametrize("header, delimiter", [("a,b,c", ","), ("a;b;c", ";"), ("a\tb\tc", "\t"), ("a|b|c", "|"),
                                               ("a;b,c;d", ";"), ("a,b;c", ","), ("single", ",")])
def test_the_delimiter_is_the_one_that_splits_the_header_most(header, delimiter):
    assert sniff_delimiter(header) == delimiter


def test_header_names_are_stripped_numbered_and_unique():
    assert header_names([" ts ", "", "value", "value", "value", "value_2"]) == [
        "ts", "column_2", "value", "value_2", "value_3", "value_2_2"]
    assert CsvParser('"ts";"message";"the ""value"""').keys == ("ts", "message", 'the "value"')


def test_csv_quoting():
    parser = CsvParser("ts;msg;value")
    assert parser.fields('2024;"pressure; high";"say ""hi"""') == ["2024", "pressure; high", 'say "hi"']
    assert parser.fields("2024;;") == ["2024", "", ""]
    assert parser.fields('2024;"";x') == ["2024", "", "x"]


@pytest.mark.parametrize("line, reason", [
    ("1;2", "CSV: expected 3 fields as in the header, got 2"),
    ("1;2;3;4", "CSV: expected 3 fields as in the header, got 4"),
    ('1;"open quote;3', "CSV: unexpected end of data"),
    ('1;"a"b;3', "CSV: ';' expected after '\"'"),
])
def test_csv_lines_that_do_not_fit_are_rejected(line, reason):
    with pytest.raises(LineRejected, match=re.escape(reason)):
        CsvParser("ts;msg;value").fields(line)


CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=12)


@given(st.sampled_from([",", ";", "\t", "|"]), st.lists(st.lists(CELL, min_size=3, max_size=3), max_size=5))
def test_any_values_written_by_a_csv_writer_come_back(delimiter, records):
    header = delimiter.join(["ts", "machine", "message"])
    parser = CsvParser(header)
    for values in records:
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="").writerow(values)
        assert parser.fields(out.getvalue()) == values


# ---------------------------------------------------------------- JSON, regex, text


def test_json_objects_and_what_is_rejected():
    parser = JsonParser()
    assert parser.fields('{"ts": 1, "msg": "caf\\u00e9", "n": null}') == {"ts": 1, "msg": "café", "n": None}
    assert parser.fields(r'{"path": "C:\\u0000\\dir"}') == {"path": "C:\\u0000\\dir"}  # a backslash, then u0000
    for line, reason in (("[1, 2]", "JSON: expected an object, got list"), ("not json", "JSON: Expecting value"),
                         ('{"a": "\\u0000"}', "JSON: contains \\u0000"),
                         ('{"a": [{"\\u0000": 1}]}', "JSON: contains \\u0000"),
                         ('{"a": "\\ud800"}', "JSON: contains an unpaired UTF-16 surrogate escape")):
        with pytest.raises(LineRejected, match=re.escape(reason)):
            parser.fields(line)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e-20000", "1e20000", "0." + "1" * 20000,
                                    "1" * 5000])
def test_json_numbers_postgresql_cannot_hold_reject_the_line(number):
    """NaN/Infinity are not JSON and jsonb refuses them, as it refuses numbers beyond its numeric range:
    such a line must be rejected, or its COPY would fail the file in every run."""
    with pytest.raises(LineRejected, match="^JSON: "):
        JsonParser().fields(f'{{"ts": "2024-03-01", "v": {number}}}')


def test_json_numbers_beyond_a_double_are_kept_as_written():
    assert JsonParser().fields('{"big": 1e999, "pi": 3.14159265358979323846264338327950288}') == {
        "big": "1e999", "pi": 3.141592653589793}  # the row's fields keep the line's text (test_ftp_rows)


def test_regex_and_text_lines():
    regex = RegexParser(re.compile(r"(?P<machine>\w+)\|(?P<message>.*)"))
    assert regex.fields("ARM|gripper open") == {"machine": "ARM", "message": "gripper open"}
    with pytest.raises(LineRejected, match="does not match LOG_REGEX"):
        regex.fields("no bar here")
    text = TextParser()
    assert text.fields("2024-03-01 08:00:00,123 [WARN]: hot") == {
        "timestamp": "2024-03-01 08:00:00,123", "level": "WARN", "message": "hot"}
    assert text.fields("01.03.2024 08:00:00 | ERROR spindle") == {
        "timestamp": "01.03.2024 08:00:00", "level": "ERROR", "message": "spindle"}
    assert text.fields("just words") == {}  # loaded with the whole line as message, never rejected


# ---------------------------------------------------------------- choosing the format


def logs(log_format="auto", log_formats=(), log_regex=None):
    return SimpleNamespace(log_format=log_format, log_formats=log_formats, log_regex=log_regex)


@pytest.mark.parametrize("path, first_line, fmt", [
    ("a.csv", "x", "csv"), ("a.TSV", "x", "csv"), ("a.csv.gz", "x", "csv"), ("a.jsonl", "x", "jsonl"),
    ("a.ndjson", "x", "jsonl"), ("a.json.gz", "x", "jsonl"), ("a.log", ' {"a": 1}', "jsonl"), ("a.log", "x", "text"),
    ("a.txt.gz", "[INFO] x", "text")])
def test_auto_format_by_extension_then_content(path, first_line, fmt):
    assert sniff_format(path, first_line) == fmt


def test_log_formats_first_matching_glob_wins_else_log_format():
    settings = logs("raw", (("press*/*.log", "regex"), ("*.log", "jsonl")))
    assert format_for(settings, "press01/a.log") == "regex"
    assert format_for(settings, "cnc/a.log") == "jsonl"
    assert format_for(settings, "cnc/a.txt") == "raw"
    assert type(make_parser("text", "x")) is TextParser and make_parser("raw", "x").fields("x") == {}


def test_globs_match_the_path_below_the_folder_or_the_file_name():
    assert path_matches("press01/a.log", ("*.log",)) and path_matches("press01/a.log", ("press*/*.log",))
    assert not path_matches("press01/a.log", ("cnc*/*",)) and not path_matches("a.log.1", ("*.log",))


@pytest.mark.parametrize("path, pattern, machine", [
    ("press01/2024-03-01.log", None, "press01"), ("cnc07_2024.log", None, "cnc07"), ("cnc07.log", None, "cnc07"),
    ("plant/line7/x.log", r"line\d+", "line7"), ("plant/line7/x.log", r"plant/(\w+)/", "line7"),
    ("m-12.log", r"m-(?P<machine>\d+)", "12"), ("other.log", r"line\d+", None)])
def test_machine_from_path(path, pattern, machine):
    assert machine_from_path(path, re.compile(pattern) if pattern else None) == machine
