"""Unit tests of fields → rows: time parsing, and COPY text that PostgreSQL reads back exactly.

The round trips COPY the service's own text into the real machine_logs table (in a transaction
that is rolled back) and compare what PostgreSQL stored with what went in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import psycopg2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg2.extras import RealDictCursor

from datasync import postgres
from datasync.ftp.parsers import CsvParser, JsonParser
from datasync.ftp.rows import COLUMNS, RowWriter, copy_text, create_tables, parse_time
from tests.conftest import unique_name

UTC_TZ, BERLIN = ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
ROUND_TRIP = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@pytest.fixture(scope="module")
def pg(pg_server):
    """A connection to a throwaway database holding machine_logs (module-wide: hypothesis runs many examples)."""
    name = unique_name("dsunit")
    admin = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.user, dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    conn = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.user, dbname=name)
    create_tables(conn, SimpleNamespace(target_schema="public", target_table="machine_logs",
                                        rejects_table="machine_log_rejects"))
    yield conn
    conn.close()
    admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def stored(pg, *lines):
    """COPY the lines into machine_logs and read them back; nothing stays."""
    try:
        postgres.copy_in(pg, postgres.ident("machine_logs"), COLUMNS, ["".join(lines).encode()])
        with pg.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute("SELECT source_file, line_no, machine_id, logged_at, level, message, fields, "
                        "fields::text AS fields_text FROM machine_logs ORDER BY line_no")
            return cur.fetchall()
    finally:
        pg.rollback()


# ---------------------------------------------------------------- COPY text


@pytest.mark.parametrize("value, text", [("plain", "plain"), ("a\tb", "a\\tb"), ("a\\b", "a\\\\b"),
                                         ("line\nbreak\r", "line\\nbreak\\r"), ("\\N", "\\\\N")])
def test_copy_text_escapes(value, text):
    assert copy_text(value) == text


@ROUND_TRIP
@given(TEXT, TEXT, TEXT)
def test_any_text_survives_the_copy_exactly(pg, path, machine, message):
    writer = RowWriter("/" + path, 1, machine or None, UTC_TZ)
    row = stored(pg, writer.row(7, "the line", {"message": message, "level": "warn"}))[0]
    assert (row["source_file"], row["line_no"], row["machine_id"], row["level"], row["message"]) == (
        "/" + path, 7, machine or None, "WARN", message)
    assert row["fields"] == {"message": message, "level": "warn"}


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | TEXT, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                           max_leaves=8)


def exact(text):
    """JSON with every number as a Decimal: the value as written, compared without rounding."""
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


@ROUND_TRIP
@given(st.dictionaries(TEXT, JSON_VALUES, max_size=5))
def test_json_lines_keep_their_fields(pg, record):
    line = json.dumps(record, ensure_ascii=False)
    row = stored(pg, RowWriter("/x.jsonl", 1, None, UTC_TZ).row(1, line, JsonParser().fields(line), line))[0]
    assert exact(row["fields_text"]) == exact(line)


def test_json_numbers_are_stored_exactly_as_written(pg):
    line = '{"pi": 3.14159265358979323846264338327950288, "big": 1e999, "n": 12345678901234567890123, "tab":\t1}'
    row = stored(pg, RowWriter("/x.jsonl", 1, None, UTC_TZ).row(1, line, JsonParser().fields(line), line))[0]
    assert exact(row["fields_text"]) == {"pi": Decimal("3.14159265358979323846264338327950288"),
                                         "big": Decimal("1e999"), "n": 12345678901234567890123, "tab": 1}


@ROUND_TRIP
@given(st.lists(TEXT.filter(lambda t: "\r" not in t and "\n" not in t), min_size=4, max_size=4))
def test_csv_values_are_stored_exactly(pg, values):
    keys = ("timestamp", "machine", "level", "message")
    parser = CsvParser(",".join(keys))
    line = ",".join('"' + v.replace('"', '""') + '"' for v in values)
    row = stored(pg, RowWriter("/x.csv", 1, "fallback", UTC_TZ).csv_row(2, line, parser.fields(line), parser.keys))[0]
    assert row["fields"] == dict(zip(keys, values))
    assert (row["machine_id"], row["level"], row["message"]) == (values[1] or "fallback", values[2].upper() or None,
                                                                 values[3])


# ---------------------------------------------------------------- times


@pytest.mark.parametrize("value, expected", [
    ("2024-03-01T08:00:00Z", "2024-03-01T08:00:00+00:00"),
    ("2024-03-01 08:00:00.250+01:00", "2024-03-01T08:00:00.250000+01:00"),
    ("2024-03-01 08:00:00", "2024-03-01T08:00:00+01:00"),                 # no offset: LOG_TIMEZONE
    ("2024-07-01 08:00:00", "2024-07-01T08:00:00+02:00"),                 # summer time
    ("01.03.2024 08:00:00", "2024-03-01T08:00:00+01:00"),                 # day first
    ("01/03/2024 08:00:00.5", "2024-03-01T08:00:00.500000+01:00"),
    ("2024/03/01 08:00:00", "2024-03-01T08:00:00+01:00"),
    ("01/Mar/2024:08:00:00 +0000", "2024-03-01T08:00:00+00:00"),          # Apache
    ("Fri Mar 01 08:00:00 2024", "2024-03-01T08:00:00+01:00"),
    (1709280000, "2024-03-01T08:00:00+00:00"), ("1709280000", "2024-03-01T08:00:00+00:00"),
    (1709280000123, "2024-03-01T08:00:00.123000+00:00"), (1709280000.5, "2024-03-01T08:00:00.500000+00:00"),
    ("1709280000123456", "2024-03-01T08:00:00.123456+00:00"),
    (12345, None), ("12345678", None), ("yesterday", None), ("", None), (None, None), (True, None),
    (float("nan"), None), (float("inf"), None), ("9" * 400, None),              # no crash, no endless loop
])
def test_parse_time(value, expected):
    assert parse_time(value, BERLIN) == expected


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)),
       st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]),
       st.sampled_from(["T", " "]))
def test_parse_time_reads_iso_text_as_the_same_moment(moment, tz, sep):
    text = moment.replace(tzinfo=tz).isoformat(sep)
    assert datetime.fromisoformat(parse_time(text, BERLIN)) == moment.replace(tzinfo=tz or BERLIN)


ISO_ISH = st.text(st.sampled_from("0123456789-:T .,Z+Wx"), min_size=4, max_size=32)


@ROUND_TRIP
@given(st.one_of(ISO_ISH, st.datetimes(min_value=datetime(2, 1, 1)).map(lambda d: d.isoformat())),
       st.sampled_from([UTC_TZ, BERLIN]))
@example("2024-W10-5", UTC_TZ).via("a week date: Python reads it, PostgreSQL does not")
@example("2024-W10-5T08:00:00+01:00", UTC_TZ).via("the same with an offset")
@example("2024-03-01T08", UTC_TZ).via("hours alone")
@example("2024-03-01x08:00:00", UTC_TZ).via("a separator letter")
@example("2024-03-01T08:00:00+01:00:30.5", BERLIN).via("an offset with a fraction of a second")
@example("0001-01-01T00:00:00+01:00:00.5", BERLIN).via("... that would move before year 1")
def test_any_time_text_either_loads_as_the_moment_python_reads_or_as_null(pg, text, tz):
    """Whatever a log's time field holds, the COPY succeeds: a time PostgreSQL would refuse would fail the file."""
    row = stored(pg, RowWriter("/t.csv", 1, None, tz).csv_row(2, "x", [text], ("timestamp",)))[0]
    try:
        expected = datetime.fromisoformat(text)
    except ValueError:
        expected = None
    if expected is not None and row["logged_at"] is not None:
        assert abs(row["logged_at"] - (expected if expected.tzinfo else expected.replace(tzinfo=tz))) \
            < timedelta(microseconds=1)
