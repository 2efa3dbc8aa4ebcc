"""Decoded lines → fields: the five formats (csv, jsonl, regex, text, raw) and how a file's is chosen.

A parser's ``fields(line)`` returns a dict of fields (jsonl, regex, text, raw) or, for CSV, the
list of values in header order (``keys`` names them): the hot path builds rows from the list
without making a dict.  A line that cannot be parsed raises ``LineRejected`` with the reason;
the load puts it in the rejects table and carries on.
"""

from __future__ import annotations

import csv
import json
import math
import posixpath
import re

from ..errors import LineRejected
from .paths import path_matches

DELIMITERS = (",", ";", "\t", "|")
NUMBER_LIMIT = 1000  # JSON number text longer than this, or an exponent beyond it, is refused (jsonb's numeric
                     # holds 16383 digits after the point: a number beyond it would fail the file's COPY)
TEXT_LINE = re.compile(
    r"(?P<timestamp>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d(?:[.,]\d+)?|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?)"
    r"\s*[|;,]?\s*(?:\[?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRITICAL|ALARM)\]?:?(?:\s+|$))?"
    r"(?P<message>.*)", re.IGNORECASE | re.DOTALL)


def format_for(logs, relative):
    """The format a file is read in: the first LOG_FORMATS glob that matches, else LOG_FORMAT (may be auto)."""
    for pattern, fmt in logs.log_formats:
        if path_matches(relative, (pattern,)):
            return fmt
    return logs.log_format


def sniff_format(relative, first_line):
    """LOG_FORMAT=auto: by extension (``.gz`` stripped), then by content (``{`` → jsonl, otherwise text)."""
    ext = posixpath.splitext(relative.lower().removesuffix(".gz"))[1]
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "text"


def make_parser(fmt, header, log_regex=None):
    """The parser for format ``fmt``; CSV takes its header line, regex LOG_REGEX."""
    if fmt == "csv":
        return CsvParser(header)
    if fmt == "jsonl":
        return JsonParser()
    if fmt == "regex":
        return RegexParser(log_regex)
    if fmt == "text":
        return TextParser()
    return RawParser()


def sniff_delimiter(header):
    """The candidate that splits the header most often (ties keep the first of , ; tab |)."""
    counts = [(header.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def header_names(cells):
    """Header cells as keys: stripped, empty ones named column_N, duplicates suffixed _2, _3..."""
    names, seen = [], set()
    for i, name in enumerate(cells, 1):
        name = name.strip() or f"column_{i}"
        base, n = name, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


class CsvParser:
    """One physical line is one record (a quoted field may not span lines); quotes only when present."""

    fmt = "csv"
    fields_are_the_line = False

    def __init__(self, header):
        self.delimiter = sniff_delimiter(header)
        self.keys = tuple(header_names(self._split(header)))

    def _split(self, line):
        if '"' in line:
            try:
                return next(csv.reader([line], delimiter=self.delimiter, strict=True))
            except csv.Error as exc:
                raise LineRejected(f"CSV: {exc}") from None
        return line.split(self.delimiter)

    def fields(self, line):
        values = self._split(line)
        if len(values) != len(self.keys):
            raise LineRejected(f"CSV: expected {len(self.keys)} fields as in the header, got {len(values)}")
        return values


def _json_number(text):
    """A JSON number with a fraction or exponent, refused when PostgreSQL's jsonb could not hold it."""
    exponent = text.lower().partition("e")[2]
    if len(text) > NUMBER_LIMIT or abs(int(exponent or 0)) > NUMBER_LIMIT:
        raise LineRejected(f"JSON: the number {text[:40]}{'...' if len(text) > 40 else ''} is beyond what "
                           "PostgreSQL's jsonb holds")
    value = float(text)
    return value if math.isfinite(value) else text  # 1e999: jsonb keeps the line's text; roles see it as text


def _json_constant(name):
    raise LineRejected(f"JSON: {name} is not a JSON number (PostgreSQL's jsonb cannot hold it)")


JSON = json.JSONDecoder(parse_float=_json_number, parse_constant=_json_constant)


class JsonParser:
    """One JSON object per line; what PostgreSQL's jsonb cannot store (NUL, lone surrogates, NaN,
    numbers beyond its numeric) rejects the line.  The row's ``fields`` is the line itself, so
    every number is kept exactly as written."""

    fmt = "jsonl"
    keys = None
    fields_are_the_line = True

    def fields(self, line):
        """The object's members; the escape checks run only for lines that have a \\u escape."""
        try:
            value = JSON.decode(line)
        except ValueError as exc:
            raise LineRejected(f"JSON: {exc}") from None
        if type(value) is not dict:
            raise LineRejected(f"JSON: expected an object, got {type(value).__name__}")
        if "\\u" in line:  # only an escape can carry what PostgreSQL cannot store
            problem = _unstorable(value)
            if problem:
                raise LineRejected(f"JSON: contains {problem}")
        return value


def _unstorable(value):
    """What in a decoded JSON value PostgreSQL cannot store (NUL, an unpaired surrogate), or None."""
    if type(value) is str:
        if "\0" in value:
            return "\\u0000, which PostgreSQL text and jsonb cannot hold"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "an unpaired UTF-16 surrogate escape"
        return None
    parts = [*value, *value.values()] if type(value) is dict else value if type(value) is list else ()
    return next(filter(None, map(_unstorable, parts)), None)


class RegexParser:
    """LOG_REGEX matched from the start of the line; its named groups are the fields."""

    fmt = "regex"
    keys = None
    fields_are_the_line = False
    required = True  # a line that does not match is rejected

    def __init__(self, pattern):
        self.match = pattern.match

    def fields(self, line):
        found = self.match(line)
        if found is None:
            if self.required:
                raise LineRejected("does not match LOG_REGEX")
            return {}
        return found.groupdict()


class TextParser(RegexParser):
    """Plain text: an optional leading timestamp and level, the rest is the message; never rejects."""

    fmt = "text"
    required = False

    def __init__(self):
        super().__init__(TEXT_LINE)


class RawParser:
    """The whole line is the message; nothing is parsed."""

    fmt = "raw"
    keys = None
    fields_are_the_line = False

    def fields(self, line):
        return {}
