"""Unit tests of the MySQL sync's pure code: the COPY lines Python rebuilds, bucket counts, digest integers."""

from __future__ import annotations

from types import SimpleNamespace

import pymysql
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasync.errors import DataSyncError
from datasync.mysql.copy import Export, parse_tail
from datasync.mysql.keys import Bucketing
from datasync.mysql.modes.diff import bucket_count, is_prime
from datasync.mysql.plan import TablePlan, Target
from datasync.mysql.source import Column, Index, MySQLSource, SourceTable
from datasync.mysql.types import QUOTE, Mapping
from datasync.state import MASK64, signed

# A table of an integer key, a text column, a large text column and a plain number, as types.py maps them.
COLUMNS = [Target("id", "id", Mapping("integer", "`id`"), False),
           Target("t", "t", Mapping("text", "`t`", quoted=True), True),
           Target("big", "big", Mapping("text", "`big`", quoted=True, size="LENGTH(`big`)",
                                        placeholder=QUOTE + QUOTE), True),
           Target("n", "n", Mapping("integer", "`n`"), True)]
PLAN = TablePlan(SourceTable("t", [Column(c, "int" if c in ("id", "n") else "text", "", c != "id") for c in
                                   ("id", "t", "big", "n")], [Index("PRIMARY", True, (("id", None),))]),
                 "src", "t", COLUMNS, "diff", None, False, "")
BOUND = 20
VALUES = st.none() | st.binary(max_size=30).map(lambda b: b.replace(b"\x00", b"")) | \
    st.sampled_from([b"", QUOTE, QUOTE * 3, b"\t\n\r\\", b"a\x01b", b"\x01\t\x01"])


def mysql_row(key, text, big, number):
    """(line, tail) as MySQL's SELECT writes them for this row (a model of Export.line() and Export.tail())."""
    def field(value, large=False):
        if value is None or (large and len(value) > BOUND):
            return b""
        return QUOTE + value + QUOTE

    line = b"\t".join([str(key).encode(), field(text), field(big, large=True),
                       b"" if number is None else str(number).encode()])
    special = (text is not None and QUOTE in text) or (big is not None and (len(big) > BOUND or QUOTE in big))
    if not special:
        return line, b""

    def entry(value, large=False):
        if value is None:
            return b"N"
        if large and len(value) > BOUND:
            return b"D"
        return b"%d:%s" % (len(value), value) if QUOTE in value else b"%d" % len(value)

    return line, b";".join([entry(text), entry(big, large=True)])


def read_csv(line):
    """The values PostgreSQL's COPY (FORMAT csv, DELIMITER tab, QUOTE 0x01) reads from one line: a quoted
    field runs to a QUOTE not followed by another (two stand for one); an unquoted empty field is NULL."""
    values, pos = [], 0
    while True:
        if line[pos:pos + 1] == QUOTE:
            value, pos = bytearray(), pos + 1
            while True:
                end = line.index(QUOTE, pos)
                value += line[pos:end]
                if line[end + 1:end + 2] == QUOTE:
                    value += QUOTE
                    pos = end + 2
                else:
                    pos = end + 1
                    break
            values.append(bytes(value))
        else:
            end = line.find(b"\t", pos)
            end = len(line) if end < 0 else end
            values.append(line[pos:end] or None)
            pos = end
        if pos >= len(line):
            return values
        assert line[pos:pos + 1] == b"\t", (line, pos)
        pos += 1


@given(key=st.integers(0, 10**6), text=VALUES, big=VALUES, number=st.none() | st.integers(-5, 5))
def test_rebuilt_lines_read_back_as_the_values(key, text, big, number):
    export = Export(PLAN, COLUMNS, 10**6)
    export.bound = BOUND
    deferred = []
    line, tail = mysql_row(key, text, big, number)
    rebuilt = export.rebuild(line, tail, deferred) if tail else line
    too_large = big is not None and len(big) > BOUND
    expected = [str(key).encode(), text, b"" if too_large else big, None if number is None else str(number).encode()]
    assert read_csv(rebuilt) == expected
    assert [(d.key, d.target.name) for d in deferred] == ([([str(key).encode()], "big")] if too_large else [])


@given(entries=st.lists(st.none() | st.just("D") | st.binary(max_size=20), max_size=6))
def test_tails_parse_entry_by_entry(entries):
    tail = b";".join(b"N" if e is None else b"D" if e == "D" else b"%d:%s" % (len(e), e) for e in entries)
    parsed = parse_tail(tail)
    assert [("N", 0, None) if e is None else ("D", 0, None) if e == "D" else ("T", len(e), e) for e in entries] \
        == parsed


def test_bucket_counts_are_primes_near_fifty_rows_each():
    assert [bucket_count(n) for n in (0, 99, 100, 1000, 1_000_000)] == [2, 2, 2, 23, 20011]
    assert all(is_prime(bucket_count(n)) for n in range(0, 100_000, 997))


@given(width=st.integers(1, 10**6), buckets=st.sets(st.integers(-50, 50), min_size=1, max_size=20),
       key=st.integers(-10**8, 10**8))
def test_key_ranges_cover_exactly_their_buckets(width, buckets, key):
    """A key lies in one of the ranges exactly when key DIV width (truncated toward zero, as on both servers)
    is one of the buckets."""
    bucketing = Bucketing(width=width)
    ranges = bucketing.ranges(buckets)
    bucket = abs(key) // width * (1 if key >= 0 else -1)
    assert any(lo <= key <= hi for lo, hi in ranges) == (bucket in buckets)
    assert all(lo <= hi for lo, hi in ranges) and len(ranges) <= len(buckets)
    # disjoint: MySQL reads them as a join, where overlapping ranges would send a row twice
    assert all(high < low for (_, high), (low, _) in zip(ranges, ranges[1:]))


def test_digests_are_stored_as_signed_bigints():
    for value in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        stored = signed(value)
        assert -(2**63) <= stored < 2**63 and stored & MASK64 == value


class FakeMariaDB:
    """A connection to a MariaDB whose information_schema.CHECK_CONSTRAINTS query fails with ``code`` (or
    returns ``checks``): what MySQLSource sees of it through PyMySQL's cursor.  Only the driver is faked."""

    def __init__(self, code=None, checks=()):
        self.code, self.checks = code, checks

    def cursor(self, cursorclass=None):
        return FakeCursor(self)


class FakeCursor:
    warning_count = 0

    def __init__(self, conn):
        self.conn, self.rows = conn, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement, args=None):
        if "CHECK_CONSTRAINTS" in statement:
            if self.conn.code is not None:
                error = pymysql.err.error_map.get(self.conn.code, pymysql.err.InternalError)
                raise error(self.conn.code, f"error {self.conn.code} from the server")
            self.rows = list(self.conn.checks)
        else:
            self.rows = [(b"10.11.6-MariaDB",)] if "VERSION()" in statement else []

    def fetchall(self):
        return self.rows


def json_columns(conn):
    source = MySQLSource(SimpleNamespace(db="shop"), None)
    source.conn = conn
    return source._json_check_columns()


def test_mariadb_json_columns_are_found_by_their_check():
    checks = [(b"docs", b"json_valid(`body`)"), (b"docs", b"`n` > 0"), (b"odd", b"json_valid(`a``b`)")]
    assert json_columns(FakeMariaDB(checks=checks)) == {("docs", "body"), ("odd", "a`b")}


@pytest.mark.parametrize("code", [1109, 1146])  # unknown table / table doesn't exist: a server without the view
def test_mariadb_json_detection_without_check_constraints_finds_none(code):
    assert json_columns(FakeMariaDB(code)) == set()


@pytest.mark.parametrize("code", [1142, 1045, 2013])  # access denied, login refused, connection lost
def test_mariadb_json_detection_raises_any_other_mysql_error(code):
    with pytest.raises(DataSyncError, match=f"error {code} from the server"):
        json_columns(FakeMariaDB(code))
