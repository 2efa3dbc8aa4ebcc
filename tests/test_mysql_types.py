"""Every MySQL value class arrives in PostgreSQL exactly, or the table fails loudly."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ALL_TYPES = """
CREATE TABLE alltypes (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, flag TINYINT(1), b8 BIT(8), b1 BIT(1),
  c CHAR(5), vc VARCHAR(20), t TEXT, lt LONGTEXT, latin VARCHAR(20) CHARACTER SET latin1,
  bin BINARY(4), vb VARBINARY(10), bl BLOB,
  e ENUM('small','large'), s SET('a','b','c'), j JSON,
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL,
  tm TIME, tm6 TIME(6), y YEAR,
  gen INT AS (i DIV 2) VIRTUAL, gens VARCHAR(40) AS (CONCAT(vc, '!')) STORED,
  geo POINT
)"""

INSERT = """INSERT INTO alltypes (id, ti, tiu, si, siu, mi, i, iu, bi, biu, dec65, f, d, flag, b8, b1, c, vc, t, lt,
  latin, bin, vb, bl, e, s, j, dt, dtm, dtm6, ts, tm, tm6, y, geo)
  VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, b'10100101', b'1', %s, %s, %s, %s,
  %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromText(%s))"""

MAX_ROW = (1, -128, 255, -32768, 65535, 16777215, -2147483648, 4294967295, -9223372036854775808,
           18446744073709551615, "-99999999999999999999999999999999999.999999999999999999999999999999",
           "3.4028234e38", "2.2250738585072014e-308", 1, "ab", "tab\there", "back\\slash\nnew\r\nline \\N",
           "😀 4-byte " * 1000, "café €uro ‰", b"\x00\x01\xfe\xff", b"\\N\t\n", bytes(range(256)), "large",
           "a,c", '{"k": [1, 2.5, "x"], "u": "ü"}', "2024-02-29", "9999-12-31 23:59:59", "1000-01-01 00:00:00.000001",
           "2038-01-19 03:14:07.999", "-838:59:59", "838:59:58.999999", 2155, "POINT(1.5 -2.25)")
NULL_ROW = (2,) + (None,) * 32


def py_float32(text):
    return struct.unpack("<f", struct.pack("<f", float(text)))[0]


def test_every_type_round_trips(sync, mysql_db, pg_db):
    mysql_db.run(ALL_TYPES)
    mysql_db.run(INSERT, args=MAX_ROW)
    mysql_db.run(INSERT.replace("ST_GeomFromText(%s)", "%s"), args=NULL_ROW)
    result = sync()
    assert result.code == 0, result.out
    row = pg_db.query("SELECT * FROM src.alltypes WHERE id = 1")[0]
    expected = (1, -128, 255, -32768, 65535, 16777215, -2147483648, 4294967295, -9223372036854775808,
                Decimal("18446744073709551615"), Decimal(MAX_ROW[10]), py_float32("3.4028234e38"),
                2.2250738585072014e-308, True, "10100101", "1", "ab", "tab\there", "back\\slash\nnew\r\nline \\N",
                "😀 4-byte " * 1000, "café €uro ‰", b"\x00\x01\xfe\xff", b"\\N\t\n", bytes(range(256)), "large",
                "a,c", {"k": [1, 2.5, "x"], "u": "ü"}, date(2024, 2, 29), datetime(9999, 12, 31, 23, 59, 59),
                datetime(1000, 1, 1, 0, 0, 0, 1), datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=UTC),
                -timedelta(hours=838, minutes=59, seconds=59), timedelta(hours=838, minutes=59, seconds=58.999999),
                2155, -1073741824, "tab\there!", "POINT(1.5 -2.25)")
    actual = tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
    for name, want, got in zip(COLUMNS, expected, actual):
        if isinstance(got, datetime) and got.tzinfo:
            got = got.astimezone(UTC)
        if name == "f":  # psycopg2 reads real through its shortest float32 text: compare as float32
            got = py_float32(got)
        assert got == want, f"column {name}: {got!r} != {want!r}"
    assert pg_db.value("SELECT count(*) FROM src.alltypes WHERE id = 2 AND ti IS NULL AND j IS NULL "
                       "AND geo IS NULL AND flag IS NULL AND bl IS NULL") == 1
    types = dict(pg_db.query("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                             "WHERE attrelid = 'src.alltypes'::regclass AND attnum > 0"))
    assert types["biu"] == "numeric(20,0)" and types["flag"] == "boolean" and types["j"] == "jsonb"
    assert types["ts"] == "timestamp(3) with time zone" and types["tm"] == "interval" and types["f"] == "real"


COLUMNS = ("id ti tiu si siu mi i iu bi biu dec65 f d flag b8 b1 c vc t lt latin bin vb bl e s j dt dtm dtm6 ts "
           "tm tm6 y gen gens geo").split()


def test_float_and_double_are_exact(sync, mysql_db, pg_db):
    import random

    rnd = random.Random(7)
    mysql_db.run("CREATE TABLE nums (id INT PRIMARY KEY, f FLOAT, d DOUBLE)")
    rows = []
    for i in range(2000):
        d = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        f = struct.unpack("<f", struct.pack("<I", rnd.getrandbits(32)))[0]
        rows.append((i, repr(f) if abs(f) < 3e38 and f == f else "0.1", repr(d) if abs(d) < 1e308 and d == d else "1"))
    mysql_db.many("INSERT INTO nums VALUES (%s, %s, %s)", rows)
    assert sync().code == 0
    got = {i: (f, d) for i, f, d in pg_db.query("SELECT id, f, d FROM src.nums")}
    for i, f, d in rows:
        assert (py_float32(got[i][0]), got[i][1]) == (py_float32(f), float(d)), i


def test_zero_dates_become_null_and_are_counted(sync, mysql_db, pg_db):
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, "
                    "tn TIMESTAMP(6) NOT NULL DEFAULT '2024-01-01 00:00:00')")
        cur.execute("INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', 0), "
                    "(2, '2024-00-10', '2024-05-00 10:00:00', NULL, '2024-00-10 00:00:00'), "
                    "(3, '2024-01-02', '2024-01-02 03:04:05', NULL, '1970-01-01 00:00:01')")
    conn.close()
    result = sync()
    assert result.code == 0, result.out
    assert pg_db.query("SELECT id, d, dt, ts, tn FROM src.z ORDER BY id") == [
        (1, None, None, None, None), (2, None, None, None, None),
        (3, date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5), None, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))]
    assert result.lines("z: full ok: 3 inserted, 0 updated, 0 deleted, 7 zero dates nulled")
    summary = [line for line in result.lines("summary |") if " z " in line + " "]
    assert summary and summary[0].split()[-3] == "7"


def test_latin1_table_arrives_as_utf8(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE legacy (id INT PRIMARY KEY, name VARCHAR(30)) CHARACTER SET latin1")
    conn = mysql_db.connect(charset="latin1")
    with conn.cursor() as cur:  # bytes 0x80 (euro in cp1252), 0xe9, 0x9c exactly as a latin1 client stores them
        cur.execute(b"INSERT INTO legacy VALUES (1, 'caf\xe9 \x80 \x9cuvre')")
    conn.close()
    assert sync().code == 0
    assert pg_db.value("SELECT name FROM src.legacy") == "café € œuvre"


def test_bad_values_fail_their_table_with_column_and_key(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE flags (id INT PRIMARY KEY, active TINYINT(1))",
                 "INSERT INTO flags VALUES (1, 1), (2, 0), (7, 2)",
                 "CREATE TABLE texts (code VARCHAR(10) PRIMARY KEY, body TEXT)",
                 "INSERT INTO texts VALUES ('ok', 'fine'), ('bad', CONCAT('a', CHAR(0), 'b'))",
                 "CREATE TABLE good (id INT PRIMARY KEY)", "INSERT INTO good VALUES (1)")
    result = sync()
    assert result.code == 1
    assert result.lines("flags: failed: table 'flags': column 'active' is not 0 or 1") and "id=7" in result.out
    assert result.lines("texts: failed: table 'texts': column 'body' contains a NUL byte") and "code=bad" in result.out
    assert pg_db.value("SELECT count(*) FROM src.good") == 1
    assert pg_db.value("SELECT to_regclass('src.flags')") is None  # nothing half-written
    assert sync(MYSQL_TINYINT1_AS_BOOLEAN="false", MYSQL_TABLES="flags").code == 0
    assert pg_db.query("SELECT active FROM src.flags ORDER BY id") == [(1,), (0,), (2,)]


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60) | \
    st.sampled_from(["\\N", "\\", "\t\n\r", "\\.", "'\"", "😀\U0010ffff"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=1, max_size=8), blobs=st.lists(st.binary(max_size=40), min_size=1, max_size=8))
def test_arbitrary_text_and_bytes_survive(sync, mysql_db, pg_db, texts, blobs):
    # NOT NULL columns are exported without IFNULL: same text, and a NULL stays NULL next to them
    mysql_db.run("DROP TABLE IF EXISTS prop", "CREATE TABLE prop (id INT PRIMARY KEY, t LONGTEXT, b LONGBLOB, "
                 "tn VARCHAR(100) NOT NULL, bn VARBINARY(100) NOT NULL)")
    rows = [(i, None if i == 3 else texts[i % len(texts)], None if i == 2 else blobs[i % len(blobs)],
             texts[-1 - i % len(texts)], blobs[-1 - i % len(blobs)]) for i in range(max(len(texts), len(blobs), 4))]
    mysql_db.many("INSERT INTO prop VALUES (%s, %s, _binary %s, %s, _binary %s)",
                  [(i, t, b or b"", tn, bn) for i, t, b, tn, bn in rows])
    mysql_db.run("UPDATE prop SET b = NULL WHERE id = 2")
    result = sync("--full-refresh")
    assert result.code == 0, result.out
    got = [(i, t, None if b is None else bytes(b), tn, bytes(bn))
           for i, t, b, tn, bn in pg_db.query("SELECT id, t, b, tn, bn FROM src.prop ORDER BY id")]
    assert got == rows


@pytest.mark.parametrize("value", ["plain", "with\ttab", "x\\N"])
def test_text_primary_keys_with_specials_delete_correctly(sync, mysql_db, pg_db, value):
    mysql_db.run("CREATE TABLE k (code VARCHAR(20) PRIMARY KEY, updated_at TIMESTAMP(6) NOT NULL "
                 "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))")
    mysql_db.run("INSERT INTO k (code) VALUES (%s), ('other')", args=(value,))
    assert sync().code == 0
    mysql_db.run("DELETE FROM k WHERE code = %s", args=(value,))
    result = sync()
    assert result.lines("k: incremental ok: 0 inserted, 0 updated, 1 deleted")
    assert pg_db.query("SELECT code FROM src.k") == [("other",)]


def test_geometry_becomes_postgis_geometry_when_the_target_has_postgis(sync, mysql_db, pg_db):
    available = pg_db.value("SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'")
    assert available, ("PostGIS is not installed for this PostgreSQL: apt-get install "
                       "postgresql-$(ls /usr/lib/postgresql)-postgis-3 (bash .ci/run does)")
    pg_db.query("CREATE EXTENSION postgis")
    # longitude 13.4, latitude 52.5 (Berlin). MySQL 8 reads WKT of SRID 4326 latitude first, as the SRS
    # defines its axes, unless told otherwise; MariaDB always reads x y as longitude latitude.
    long_lat = ", 'axis-order=long-lat'" if mysql_db.is_oracle_mysql8() else ""
    mysql_db.run("CREATE TABLE places (id INT PRIMARY KEY, g GEOMETRY, p POINT)",
                 "INSERT INTO places VALUES (1, ST_GeomFromText('POLYGON((0 0,4 0,4 3,0 0))', 3857), "
                 f"ST_GeomFromText('POINT(13.4 52.5)', 4326{long_lat})), "
                 "(2, NULL, ST_GeomFromText('POINT(-1.5 0.25)'))")
    if long_lat:  # the test's premise: MySQL holds the point as longitude 13.4, latitude 52.5
        assert mysql_db.value("SELECT CONCAT(ST_Longitude(p), ' ', ST_Latitude(p)) FROM places WHERE id = 1") \
            == "13.4 52.5"
    result = sync()
    assert result.code == 0, result.out
    assert pg_db.query("SELECT id, ST_AsEWKT(g), ST_AsEWKT(p), ST_Area(g) FROM src.places ORDER BY id") == [
        (1, "SRID=3857;POLYGON((0 0,4 0,4 3,0 0))", "SRID=4326;POINT(13.4 52.5)", 6.0),
        (2, None, "POINT(-1.5 0.25)", None)]
    types = dict(pg_db.query("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                             "WHERE attrelid = 'src.places'::regclass AND attnum > 0"))
    assert types["g"] == types["p"] == "geometry"


def test_charset_without_unicode_equivalent_fails_the_table_not_silently(sync, mysql_db, pg_db):
    """sjis 0xEFFC (a vendor character) has no Unicode equivalent: MySQL's CONVERT would make it '?'."""
    mysql_db.run("CREATE TABLE jp (id INT PRIMARY KEY, name VARCHAR(10), note TEXT) CHARACTER SET sjis",
                 "CREATE TABLE jp_ok (id INT PRIMARY KEY, name VARCHAR(10)) CHARACTER SET sjis")
    conn = mysql_db.connect(charset="sjis")
    with conn.cursor() as cur:  # raw sjis: 0x82A0 あ, 0x8140 U+3000, 0x955C 表 (its 2nd byte is a backslash's)
        cur.execute(b"INSERT INTO jp VALUES (1, '\x82\xa0\x81\x40\\\\', 'fine'), (2, 'x\xef\xfcy', 'also fine')")
        cur.execute(b"INSERT INTO jp_ok VALUES (1, '\x82\xa0\x81\x40\x95\x5c\\\\?'), (2, NULL)")
    conn.close()
    result = sync()
    assert result.code == 1, result.out
    assert result.lines("jp: failed: table 'jp': column 'name' holds a character of charset sjis that has no "
                        "Unicode equivalent") and "(row id=2)" in result.out
    assert pg_db.value("SELECT to_regclass('src.jp')") is None
    assert pg_db.query("SELECT id, name FROM src.jp_ok ORDER BY id") == [(1, "あ\u3000表\\?"), (2, None)]


@pytest.mark.parametrize(("version", "mysql8"), [
    ("8.0.36", True), ("8.4.2-log", True), ("9.1.0", True), ("5.7.44-log", False),
    ("10.11.19-MariaDB-0+deb12u1", False), ("11.4.2-MariaDB-log", False)])
def test_mysql8_is_told_to_write_wkt_longitude_first(version, mysql8):
    """MySQL 8 writes geographic WKT latitude first unless asked; MariaDB knows no such option."""
    from datasync.mysql.source import MySQLSource

    assert MySQLSource.is_mysql8(version) is mysql8
