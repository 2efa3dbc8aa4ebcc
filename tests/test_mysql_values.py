"""Values arrive exactly whatever their size or bytes, MySQL's work stays linear, --verify checks independently."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

import mysql_sync_service
from datasync.mysql import copy as copy_module
from tests.helpers import mysql_statements, run_measured


@contextmanager
def wide_writes(mysql_db, size):
    """A MySQL session that may write values larger than the server's max_allowed_packet.

    The global limit is raised only while that session connects (a session keeps the value it
    started with) and put back at once: the sync then reads with the server's normal limit.
    Yields (session, normal max_allowed_packet)."""
    admin = mysql_db.connect()
    with admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_allowed_packet")
        normal = cur.fetchone()[0]
        cur.execute("SET GLOBAL max_allowed_packet = %s", (min(1 << 30, max(normal, size + (16 << 20))),))
        try:
            writer = mysql_db.connect()
        finally:
            cur.execute("SET GLOBAL max_allowed_packet = %s", (normal,))
    admin.close()
    try:
        yield writer, normal
    finally:
        writer.close()


def packet(mysql_db):
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT @@max_allowed_packet")
        value = cur.fetchone()[0]
    conn.close()
    return value


def fingerprints(mysql_db, pg_db, table, columns, binary=()):
    """{(id, column): (bytes, sha256)} on each side, from each side's own values."""
    mine, theirs = [], []
    for c in columns:
        value = f"`{c}`" if c in binary else f"CONVERT(`{c}` USING utf8mb4)"
        mine.append(f"LENGTH({value}), SHA2({value}, 256)")
        value = f'"{c}"' if c in binary else f"convert_to(\"{c}\", 'UTF8')"
        theirs.append(f"octet_length({value}), encode(sha256({value}), 'hex')")
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, {', '.join(mine)} FROM `{table}` ORDER BY id")
        my = cur.fetchall()
    conn.close()
    pg = pg_db.query(f"SELECT id, {', '.join(theirs)} FROM src.{table} ORDER BY id")
    return ([tuple(None if v is None else int(v) if isinstance(v, int) else str(v) for v in r) for r in my],
            [tuple(None if v is None else int(v) if isinstance(v, int) else str(v) for v in r) for r in pg])


def test_values_larger_than_a_packet_arrive_exactly(sync, mysql_db, pg_db):
    p = packet(mysql_db)
    mysql_db.run("CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB, t LONGTEXT, l LONGTEXT CHARACTER SET latin1, "
                 "j JSON)")
    with wide_writes(mysql_db, p + (1 << 20)) as (writer, _):
        with writer.cursor() as cur:
            # HEX() of row 1's blob and the COPY text of its other values each exceed one packet;
            # row 2's blob itself is larger than a packet; row 2's text is all QUOTE bytes
            cur.execute("INSERT INTO big VALUES (1, REPEAT(x'00ff', %s), REPEAT('é\\\\\t\n\r\"', %s), "
                        "REPEAT(x'80e9', %s), JSON_OBJECT('k', REPEAT('ü\\\\', %s), 'n', 1.5)), "
                        "(2, REPEAT(x'01', %s), REPEAT(x'01', %s), NULL, NULL), (3, NULL, NULL, NULL, NULL), "
                        "(4, '', '', '', JSON_ARRAY())",
                        (p // 4 + 100, (p - 1000) // 7, p // 3, p // 8, p + (1 << 20), p // 2))
    mysql_db.run("CREATE TABLE wide (id INT PRIMARY KEY, c1 LONGTEXT, c2 LONGTEXT, c3 LONGTEXT, c4 LONGTEXT, "
                 "c5 LONGTEXT)")
    mysql_db.run("INSERT INTO wide VALUES (1, REPEAT('a', %s), REPEAT('b', %s), REPEAT('c', %s), REPEAT('d', %s), "
                 "REPEAT('e', %s))", args=(p // 4,) * 5)  # the whole row is larger than a packet
    first = sync()
    assert first.code == 0, first.out
    assert first.lines("read in pieces")
    mine, theirs = fingerprints(mysql_db, pg_db, "big", ["b", "t", "l"], binary=("b",))
    assert mine == theirs and mine[2] == (3, None, None, None, None, None, None)
    mine, theirs = fingerprints(mysql_db, pg_db, "wide", ["c1", "c2", "c3", "c4", "c5"])
    assert mine == theirs and mine[0][1] == p // 4
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT id, CAST(j AS CHAR) FROM big ORDER BY id")
        documents = [(i, None if j is None else json.loads(j)) for i, j in cur.fetchall()]
    conn.close()
    assert pg_db.query("SELECT id, j FROM src.big ORDER BY id") == documents
    mysql_db.run("UPDATE big SET b = CONCAT(b, x'07'), t = CONCAT('x', t) WHERE id = 1")
    second = sync()
    assert second.code == 0 and second.lines("big: diff ok: 0 inserted, 1 updated, 0 deleted"), second.out
    mine, theirs = fingerprints(mysql_db, pg_db, "big", ["b", "t", "l"], binary=("b",))
    assert mine == theirs
    assert sync("--verify").code == 0


def test_a_keyless_table_with_a_value_too_large_fails_alone(sync, mysql_db, pg_db):
    p = packet(mysql_db)
    mysql_db.run("CREATE TABLE heap (a INT, b LONGBLOB)", "CREATE TABLE fine (id INT PRIMARY KEY)",
                 "INSERT INTO fine VALUES (1)")
    mysql_db.run("INSERT INTO heap VALUES (1, REPEAT(x'ab', %s))", args=(p // 2,))
    result = sync()
    assert result.code == 1
    assert result.lines("heap: failed: table 'heap': column 'b' of a row (table has no key) holds a value too "
                        f"large for one MySQL packet (max_allowed_packet {p} bytes)")
    assert pg_db.value("SELECT to_regclass('src.heap')") is None
    assert pg_db.value("SELECT count(*) FROM src.fine") == 1


def test_memory_stays_bounded_for_a_200_mb_value(sync_env, mysql_db, pg_db):
    size = 200 << 20
    mysql_db.run("CREATE TABLE huge (id INT PRIMARY KEY, b LONGBLOB)")
    with wide_writes(mysql_db, size) as (writer, _), writer.cursor() as cur:
        cur.execute("INSERT INTO huge VALUES (1, REPEAT(x'0123456789abcdef', %s))", (size // 8,))
    code, out, peak_mb = run_measured("mysql_sync_service.py", sync_env)
    assert code == 0, out
    assert pg_db.value("SELECT octet_length(b) FROM src.huge") == size
    assert pg_db.value("SELECT encode(sha256(b), 'hex') FROM src.huge") == \
        fingerprints(mysql_db, pg_db, "huge", ["b"], binary=("b",))[0][0][2]
    assert peak_mb < 150, f"the sync needed {peak_mb:.0f} MB of memory for a 200 MB value:\n{out}"


def test_export_stays_linear_whatever_the_bytes(sync, mysql_db, pg_db):
    """10 MB of backslashes, tabs, newlines and QUOTE bytes: a quadratic escape would run for hours."""
    size = 10 << 20
    mysql_db.run("CREATE TABLE nasty (id INT PRIMARY KEY, t LONGTEXT)")
    mysql_db.run("INSERT INTO nasty VALUES (1, REPEAT('\\\\\\t\\n\\r', %s)), (2, REPEAT(x'01', %s)), "
                 "(3, REPEAT('\"', %s)), (4, REPEAT('\\\\', %s))", args=(size // 4, size, size, size))
    result = sync()
    assert result.code == 0, result.out
    mine, theirs = fingerprints(mysql_db, pg_db, "nasty", ["t"])
    assert mine == theirs and [r[1] for r in mine] == [size, size, size, size]
    assert sync().lines("nasty: diff ok: 0 inserted, 0 updated, 0 deleted")
    assert mysql_statements(mysql_db) == ()  # nothing of ours is left running on the server


def test_legacy_charset_check_stays_linear_whatever_the_bytes(sync, mysql_db, pg_db):
    """The check for characters Unicode lacks once counted '?' with a length-changing REPLACE, whose cost
    on MariaDB is the square of the value's size (4M '?' would keep a core busy for minutes, past the
    test's timeout).  Values full of '?' arrive exactly; a lost character is still caught."""
    size = 4 << 20
    mysql_db.run("CREATE TABLE jp_q (id INT PRIMARY KEY, t LONGTEXT) CHARACTER SET sjis")
    mysql_db.run("INSERT INTO jp_q VALUES (1, REPEAT('?', %s)), (2, CONCAT(REPEAT('?!', %s), 'x'))",
                 args=(size, size // 2))
    result = sync()
    assert result.code == 0, result.out
    mine, theirs = fingerprints(mysql_db, pg_db, "jp_q", ["t"])
    assert mine == theirs and [r[1] for r in mine] == [size, size + 1]
    conn = mysql_db.connect(charset="sjis")
    with conn.cursor() as cur:  # 0xEFFC: a vendor character without Unicode equivalent, among the '?'
        cur.execute(b"UPDATE jp_q SET t = CONCAT(t, '\xef\xfc') WHERE id = 2")
    conn.commit()
    conn.close()
    result = sync()
    assert result.code == 1 and "column 't' holds a character of charset sjis" in result.out, result.out
    assert "(row id=2)" in result.out
    assert pg_db.value("SELECT length(t) FROM src.jp_q WHERE id = 2") == size + 1  # the copy kept its last state
    assert mysql_statements(mysql_db) == ()


def test_verify_compares_facts_each_server_computes_itself(sync_env, mysql_db, pg_db, in_process):
    """An export that loses a value (as large values once became NULL) loads the same loss into the copy
    and into verify's fresh snapshot; the facts each server computes from its own values still differ."""
    mysql_db.run("CREATE TABLE docs (id INT PRIMARY KEY, body TEXT, n INT)",
                 "INSERT INTO docs VALUES (1, 'kept', 10), (2, 'lost on the way', 20), (3, NULL, NULL)")
    monkeypatch = in_process
    for name, value in sync_env.items():
        monkeypatch.setenv(name, value)
    lossy = copy_module.Export.field

    def field(self, t):  # the old fault: a value that silently came back NULL
        if t.column == "body":
            return f"IF(`id` = 2, '', {lossy(self, t)})"
        return lossy(self, t)

    monkeypatch.setattr(copy_module.Export, "field", field)
    assert mysql_sync_service.main([]) == 0
    assert pg_db.value("SELECT body FROM src.docs WHERE id = 2") is None
    assert mysql_sync_service.main(["--verify"]) == 1  # the copy path alone would call this identical


@pytest.mark.parametrize("change, facts", [
    ("body = NULL", "body NULLs"), ("body = 'same length, new text!'", None), ("n = n + 1", "n sum")])
def test_verify_reports_what_differs(sync, mysql_db, pg_db, change, facts):
    mysql_db.run("CREATE TABLE docs (id INT PRIMARY KEY, body TEXT, n INT)",
                 "INSERT INTO docs VALUES (1, 'kept', 10), (2, 'same length, old text!', 20)")
    assert sync().code == 0
    pg_db.query(f"UPDATE src.docs SET {change} WHERE id = 2")
    result = sync("--verify")
    assert result.code == 1 and result.lines("docs: differs: MySQL 2 rows, PostgreSQL 2 rows, 1 of 64 chunks differ")
    found = result.lines("hold other facts in MySQL than in PostgreSQL")
    assert (facts in found[0]) if facts else not found, result.out  # lengths and counts cannot see a same-length edit
