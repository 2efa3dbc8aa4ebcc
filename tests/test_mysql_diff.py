"""Diff mode on real servers: every kind of change and key, in place, only what changed, faults, drift, and
a property test of random change sequences."""

from __future__ import annotations

import json
import random
import signal
import struct
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mysql_sync_service
from tests.helpers import pg_rows, start_sync, table_state, wait_for


def mysql_rows(mysql_db, table, order="1"):
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{table}` ORDER BY {order}")
        rows = [list(r) for r in cur.fetchall()]
    conn.close()
    return rows


def normal(value):
    """A value as Python compares it on both sides (bytes, JSON, aware timestamps)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, Decimal) and value == value.to_integral_value() and value.as_tuple().exponent == 0:
        return int(value)  # BIGINT UNSIGNED is numeric(20,0) in PostgreSQL
    return value


def same_rows(mysql_db, pg_db, table, order="1", json_columns=()):
    """Every value of every row, compared one by one (not by digests)."""
    mine = mysql_rows(mysql_db, table, order)
    theirs = [list(r) for r in pg_db.query(f'SELECT * FROM src."{table}" ORDER BY {order}')]
    for rows, decode in ((mine, True), (theirs, False)):
        for row in rows:
            for i in json_columns:
                if decode and row[i] is not None:
                    row[i] = json.loads(row[i])
            row[:] = [normal(v) for v in row]
    assert theirs == mine
    return len(mine)


def versions(pg_db, table, key="id"):
    """{key: xmin}: a row rewritten by a run gets a new xmin."""
    return dict(pg_db.query(f"SELECT {key}, xmin::text FROM src.{table}"))


def next_double(x):
    return struct.unpack("<d", struct.pack("<q", struct.unpack("<q", struct.pack("<d", x))[0] + 1))[0]


def test_diff_is_the_default_for_keyed_tables_and_says_what_it_compared(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
                 "INSERT INTO items VALUES " + ", ".join(f"({i}, 'n{i}')" for i in range(1, 501)))
    dry = sync("--dry-run")
    assert "-- items -> src.items: diff (key, no cursor column); this run: create and load the table" in dry.out
    first = sync()
    assert first.lines("items: full load (new table)") and first.lines("items: full ok: 500 inserted")
    summary = [line.split("summary | ")[1].split() for line in first.lines("summary | items ")]
    assert summary[0][:2] == ["items", "diff"]
    idle = sync()
    assert idle.lines("items: diff: 500 rows in 11 buckets (key ranges of 50) compared, 0 changed, 0 rows re-read")
    assert sync("--dry-run").out.count("this run: compare bucket digests, re-read the buckets that changed") == 1
    status = sync("--status")
    assert [line for line in status.out.splitlines()
            if line.startswith("items ") and "500 rows, key ranges of 50" in line]
    assert table_state(pg_db, "items")["mode"] == "diff"


def test_every_kind_of_change_arrives_value_by_value(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE corpus (id INT PRIMARY KEY, t VARCHAR(20), d DOUBLE, ts DATETIME(6), "
                 "l VARCHAR(10) CHARACTER SET latin1, b VARBINARY(10), n DECIMAL(10,2), j JSON, k INT UNIQUE)")
    mysql_db.many("INSERT INTO corpus VALUES (%s, %s, %s, %s, %s, _binary %s, %s, %s, %s)",
                  [(i, f"text {i}", 0.1 * i, f"2024-03-01 08:00:00.{i:06d}", "café", bytes([i, 0, 255]),
                    f"{i}.25", json.dumps({"i": i, "s": "ü"}), 1000 + i) for i in range(1, 41)])
    assert sync().code == 0
    changes = [
        ("NULL -> ''", "UPDATE corpus SET t = '' WHERE id = 1", 1),
        ("'' -> NULL", "UPDATE corpus SET t = NULL WHERE id = 1", 1),
        ("same length", "UPDATE corpus SET t = 'text 3x' WHERE id = 3", 1),
        ("last bit of a DOUBLE", f"UPDATE corpus SET d = {next_double(0.4)!r} WHERE id = 4", 1),
        ("one microsecond", "UPDATE corpus SET ts = ts + INTERVAL 1 MICROSECOND WHERE id = 5", 1),
        ("a latin1 byte", "UPDATE corpus SET l = _latin1 x'636166e8' WHERE id = 6", 1),
        ("a binary byte", "UPDATE corpus SET b = _binary x'070001' WHERE id = 7", 1),
        ("a decimal digit", "UPDATE corpus SET n = 8.26 WHERE id = 8", 1),
        ("JSON", "UPDATE corpus SET j = JSON_OBJECT('i', 9, 's', 'u') WHERE id = 9", 1),
        ("insert and delete", "INSERT INTO corpus (id, t, k) VALUES (100, 'new', 2000)", 1),
        ("delete", "DELETE FROM corpus WHERE id = 11", 1),
        ("a key that changes", "UPDATE corpus SET id = 1200 WHERE id = 12", 2),
        ("two rows swap a unique value", ["UPDATE corpus SET k = -1 WHERE id = 13",
                                          "UPDATE corpus SET k = 1013 WHERE id = 14",
                                          "UPDATE corpus SET k = 1014 WHERE id = 13"], 2),
    ]
    for what, statement, written in changes:
        before = versions(pg_db, "corpus")
        mysql_db.run(*([statement] if isinstance(statement, str) else statement))
        result = sync()
        assert result.code == 0, (what, result.out)
        same_rows(mysql_db, pg_db, "corpus", json_columns=(7,))
        after = versions(pg_db, "corpus")
        rewritten = {k for k in after if before.get(k) != after[k]} | (before.keys() - after.keys())
        assert len(rewritten) == written, (what, rewritten)  # rows written = rows changed
    assert sync("--verify").code == 0


def key_tables(server_kind):
    """(name, DDL, rows, changes, order) for keys of every kind."""
    ai = "utf8mb4_0900_ai_ci" if server_kind == "mysql" else "utf8mb4_uca1400_ai_ci"
    return [
        ("dense", "CREATE TABLE dense (id INT PRIMARY KEY, v INT)", [(i, i) for i in range(1, 301)],
         ["UPDATE dense SET v = -v WHERE id % 37 = 0", "DELETE FROM dense WHERE id BETWEEN 100 AND 110",
          "INSERT INTO dense VALUES (1000, 1)"], "id"),
        ("sparse", "CREATE TABLE sparse (id BIGINT PRIMARY KEY, v INT)",
         [(-(2 ** 63), 1), (-5, 2), (1, 3), (10 ** 9, 4), (2 ** 62, 5), (2 ** 63 - 1, 6)],
         ["UPDATE sparse SET id = 7 WHERE id = 1", "DELETE FROM sparse WHERE id = 1000000000",
          "UPDATE sparse SET v = 0 WHERE id = -9223372036854775808"], "id"),
        ("ubig", "CREATE TABLE ubig (id BIGINT UNSIGNED PRIMARY KEY, v INT)",
         [(2 ** 64 - 1, 1), (2 ** 64 - 2, 2), (0, 3), (2 ** 63, 4)],
         ["UPDATE ubig SET v = 9 WHERE id = 18446744073709551615",
          "UPDATE ubig SET id = 18446744073709551613 WHERE id = 18446744073709551614"], "id"),
        ("composite", "CREATE TABLE composite (emp INT, from_date DATE, title VARCHAR(20), salary INT, "
                      "PRIMARY KEY (emp, from_date, title))",
         [(e, f"2020-0{m}-01", t, e * m) for e in range(1, 21) for m in range(1, 4) for t in ("Eng", "Mgr")],
         ["UPDATE composite SET salary = 0 WHERE emp = 3", "UPDATE composite SET title = 'Staff' WHERE emp = 4 "
          "AND title = 'Eng'", "DELETE FROM composite WHERE emp = 5 AND from_date = '2020-02-01'"],
         "emp, from_date, title"),
        ("ci_key", "CREATE TABLE ci_key (k VARCHAR(20) COLLATE utf8mb4_unicode_ci PRIMARY KEY, v INT)",
         [("a", 1), ("b", 2), ("Ünïcode", 3), ("x y", 4)],
         ["UPDATE ci_key SET k = 'A' WHERE k = 'a'", "UPDATE ci_key SET k = 'b ' WHERE k = 'b'",
          "UPDATE ci_key SET k = 'ÜNÏCODE' WHERE k = 'ünïcode'"], "k COLLATE \"C\""),
        ("ai_key", f"CREATE TABLE ai_key (k VARCHAR(20) COLLATE {ai} PRIMARY KEY, v INT)",
         [("resume", 1), ("cafe", 2)], ["UPDATE ai_key SET k = 'résumé' WHERE k = 'resume'",
                                        "UPDATE ai_key SET v = 3 WHERE k = 'CAFÉ'"], "k COLLATE \"C\""),
        ("latin_key", "CREATE TABLE latin_key (k VARCHAR(10) CHARACTER SET latin1 PRIMARY KEY, v INT)",
         [("café", 1), ("naïve", 2), ("€uro", 3)],
         ["UPDATE latin_key SET k = 'cafè' WHERE k = 'café'", "DELETE FROM latin_key WHERE k = '€uro'"],
         "k COLLATE \"C\""),
        ("other_keys", "CREATE TABLE other_keys (d DECIMAL(8,2), b BINARY(3), ts TIMESTAMP(3), y YEAR, "
                       "c CHAR(4), v INT, PRIMARY KEY (d, b, ts, y, c))",
         [(Decimal("-1.50"), b"\x00ab", "2024-01-01 00:00:00.125", 2024, "ab", 1),
          (Decimal("2.00"), b"xyz", "1999-12-31 23:59:59.999", 1999, "cd", 2)],
         ["UPDATE other_keys SET v = 9 WHERE y = 2024", "UPDATE other_keys SET c = 'ef' WHERE y = 1999"],
         "d, b, ts, y, c"),
    ]


def server_kind(mysql_db):
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    conn.close()
    return "mariadb" if "mariadb" in version.lower() else "mysql"


def test_keys_of_every_kind(sync, mysql_db, pg_db):
    tables = key_tables(server_kind(mysql_db))
    for name, ddl, rows, _, _ in tables:
        mysql_db.run(ddl)
        mysql_db.many(f"INSERT INTO {name} VALUES ({', '.join(['%s'] * len(rows[0]))})", rows)
    assert sync().code == 0
    for _, _, _, changes, _ in tables:
        mysql_db.run(*changes)
    result = sync()
    assert result.code == 0, result.out
    for name, _, _, _, order in tables:
        assert result.lines(f"{name}: diff ok"), (name, result.out)
        theirs = pg_db.query(f"SELECT * FROM src.{name} ORDER BY {order}")
        assert sorted(map(repr, [[normal(v) for v in r] for r in theirs])) == \
            sorted(map(repr, [[normal(v) for v in r] for r in mysql_rows(mysql_db, name)])), name
    assert sync("--verify").code == 0
    assert pg_db.query("SELECT k FROM src.ci_key ORDER BY k COLLATE \"C\"") == [("A",), ("b ",), ("x y",), ("ÜNÏCODE",)]


def test_the_table_keeps_its_identity_and_only_changed_rows_are_written(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))",
                 "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}')" for i in range(1, 1001)))
    assert sync().code == 0
    pg_db.query("CREATE INDEX users_v ON src.t (v); CREATE VIEW src.t_view AS SELECT * FROM src.t; "
                "COMMENT ON TABLE src.t IS 'noted'; GRANT SELECT ON src.t TO PUBLIC")
    oid, before = pg_db.value("SELECT 'src.t'::regclass::oid"), versions(pg_db, "t")
    idle = sync()
    assert idle.lines("t: diff ok: 0 inserted, 0 updated, 0 deleted") and versions(pg_db, "t") == before
    refreshed = sync("--full-refresh")
    assert refreshed.lines("t: comparing every row (--full-refresh)") and versions(pg_db, "t") == before
    mysql_db.run("UPDATE t SET v = 'changed' WHERE id = 500")
    assert sync().lines("t: diff ok: 0 inserted, 1 updated, 0 deleted")
    after = versions(pg_db, "t")
    assert [k for k in after if after[k] != before[k]] == [500]
    assert pg_db.value("SELECT 'src.t'::regclass::oid") == oid
    assert pg_db.value("SELECT count(*) FROM src.t_view") == 1000
    assert pg_db.value("SELECT to_regclass('src.users_v') IS NOT NULL")
    assert pg_db.value("SELECT obj_description('src.t'::regclass)") == "noted"
    assert pg_db.value("SELECT has_table_privilege('public', 'src.t', 'SELECT')")


def test_random_changes_reread_a_small_part_of_the_table(sync, mysql_db, pg_db):
    rows = 20000
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    mysql_db.many("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(1, rows + 1)])
    assert sync().code == 0
    rnd = random.Random(12)
    picked = rnd.sample(range(1, rows + 1), 30)
    mysql_db.run(f"UPDATE t SET v = -v WHERE id IN ({', '.join(map(str, picked[:10]))})",
                 f"DELETE FROM t WHERE id IN ({', '.join(map(str, picked[10:20]))})",
                 f"UPDATE t SET id = id + {rows} WHERE id IN ({', '.join(map(str, picked[20:]))})")
    result = sync()
    assert result.lines("t: diff ok: 10 inserted, 10 updated, 20 deleted"), result.out
    reread = int(result.lines("t: diff: ")[0].split(" changed, ")[1].split(" rows re-read")[0])
    assert reread <= rows // 10  # about 40 buckets of 50 rows, not most of the table
    assert same_rows(mysql_db, pg_db, "t") == rows - 10


def test_kill_9_mid_merge_leaves_the_previous_copy_and_digests(sync_env, sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, v INT, pad VARCHAR(100))",
                 "INSERT INTO t VALUES (1, 1, REPEAT('x', 100))")
    n = 1
    while n < 200_000:
        mysql_db.run(f"INSERT INTO t SELECT id + {n}, v, pad FROM t WHERE id + {n} <= 200000")
        n *= 2
    assert sync().code == 0
    digests = pg_db.query("SELECT bucket, row_count, digest FROM datasync.mysql_buckets ORDER BY bucket")
    mysql_db.run("UPDATE t SET v = v + 1")
    proc = start_sync(sync_env)
    wait_for(lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                 "state = 'active' AND query LIKE 'UPDATE%%'") > 0, what="the merge's UPDATE")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                 "application_name = 'datasync mysql_sync'") == 0, what="the server to notice")
    assert pg_db.value("SELECT count(*) FROM src.t WHERE v = 2") == 0
    assert pg_db.query("SELECT bucket, row_count, digest FROM datasync.mysql_buckets ORDER BY bucket") == digests
    again = sync()
    assert again.lines("t: diff ok: 0 inserted, 200000 updated, 0 deleted"), again.out
    assert pg_db.value("SELECT count(*) FROM src.t WHERE v = 2") == 200_000


def test_schema_drift_is_handled_in_place(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, v INT, gone INT)", "INSERT INTO t VALUES (1, 1, 1), (2, 2, 2)")
    assert sync().code == 0
    oid = pg_db.value("SELECT 'src.t'::regclass::oid")
    mysql_db.run("ALTER TABLE t ADD COLUMN extra VARCHAR(5) NOT NULL DEFAULT 'new'")
    added = sync()
    assert added.lines("t: the columns, their mapping or the bucket count changed: comparing every row")
    assert pg_db.query("SELECT id, extra FROM src.t ORDER BY id") == [(1, "new"), (2, "new")]
    mysql_db.run("ALTER TABLE t DROP COLUMN gone", "INSERT INTO t (id, v) VALUES (3, 3)")
    dropped = sync()
    assert dropped.lines("t: column gone no longer exists in MySQL; kept in PostgreSQL")
    assert pg_db.query("SELECT id, gone FROM src.t ORDER BY id") == [(1, 1), (2, 2), (3, None)]
    mysql_db.run("ALTER TABLE t MODIFY v BIGINT")
    retyped = sync()
    assert retyped.lines("t: full reload in place (type of column(s) v changed)")
    assert sync().lines("t: diff ok: 0 inserted, 0 updated, 0 deleted")
    assert pg_db.value("SELECT 'src.t'::regclass::oid") == oid
    assert pg_db.value("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'src.t'::regclass "
                       "AND attname = 'v'") == "bigint"


def test_hash_buckets_are_chosen_anew_when_the_table_grows(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (k VARCHAR(10) PRIMARY KEY)", "INSERT INTO t VALUES " +
                 ", ".join(f"('k{i}')" for i in range(1, 101)))
    assert sync().code == 0
    assert table_state(pg_db, "t")["buckets"] == 2
    mysql_db.run("INSERT INTO t VALUES " + ", ".join(f"('k{i}')" for i in range(101, 5001)))
    grown = sync()
    assert grown.code == 0 and table_state(pg_db, "t")["buckets"] == 101, grown.out
    assert sync().lines("t: diff: 5000 rows in 101 buckets (101 hash buckets) compared, 0 changed")
    assert pg_db.value("SELECT count(*) FROM datasync.mysql_buckets WHERE source_table = 't'") == 101
    assert pg_db.value("SELECT count(*) FROM src.t") == 5000


def test_bunched_integer_keys_get_hash_buckets(sync, mysql_db, pg_db):
    """Key ranges suit keys spread evenly; 3,000 keys in one range plus one far away do not."""
    mysql_db.run("CREATE TABLE t (id BIGINT PRIMARY KEY, v INT)")
    mysql_db.many("INSERT INTO t VALUES (%s, %s)", [(i, i) for i in range(1, 3001)] + [(10 ** 15, 0)])
    first = sync()
    assert first.lines("t: the key's values are too unevenly spread for key ranges: hash buckets instead")
    assert table_state(pg_db, "t")["bucket_width"] is None and table_state(pg_db, "t")["buckets"] == 61
    mysql_db.run("UPDATE t SET v = -1 WHERE id = 2000", "DELETE FROM t WHERE id = 1000000000000000")
    changed = sync()
    assert changed.lines("t: diff ok: 0 inserted, 1 updated, 1 deleted"), changed.out
    assert same_rows(mysql_db, pg_db, "t") == 3000


def test_the_incremental_delete_check_cannot_be_fooled(sync, mysql_db, pg_db):
    """A row committed outside the lookback window and a row deleted: equal counts, different key sets."""
    mysql_db.run("CREATE TABLE orders (id INT PRIMARY KEY, v INT, updated_at TIMESTAMP(6) NOT NULL "
                 "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
                 "INSERT INTO orders (id, v) VALUES (1, 1), (2, 2), (3, 3)")
    assert sync().code == 0
    mysql_db.run("INSERT INTO orders VALUES (4, 4, '2020-01-01 00:00:00')", "DELETE FROM orders WHERE id = 2")
    result = sync()
    assert result.code == 0, result.out
    assert result.lines("orders: delete check over 3 keys: 1 deleted")
    assert result.lines("orders: 1 row(s) MySQL has were missing in PostgreSQL")
    assert pg_db.query("SELECT id FROM src.orders ORDER BY id") == [(1,), (3,), (4,)]
    assert sync().lines("orders: delete check: the key sets match")
    assert sync("--verify").code == 0


OPERATIONS = st.lists(st.tuples(st.sampled_from(["insert", "update", "delete", "rekey"]),
                                st.sampled_from(["a", "A", "b", "é", "E", "ab ", "x"]),
                                st.sampled_from(["a", "B", "é", "z", "y"]), st.none() | st.integers(-5, 5)),
                      max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(OPERATIONS, min_size=1, max_size=3))
def test_random_change_sequences_keep_the_copy_exact(sync_env, mysql_db, pg_db, in_process, runs):
    for name, value in sync_env.items():
        in_process.setenv(name, value)
    mysql_db.run("DROP TABLE IF EXISTS prop", "CREATE TABLE prop (k VARCHAR(5) COLLATE utf8mb4_unicode_ci "
                 "PRIMARY KEY, v INT)", "INSERT INTO prop VALUES ('seed', 0)")
    pg_db.query("DROP SCHEMA IF EXISTS src CASCADE; DROP SCHEMA IF EXISTS datasync CASCADE")
    assert mysql_sync_service.main([]) == 0
    for operations in runs:
        for op, key, other, value in operations:
            statement = {"insert": "INSERT IGNORE INTO prop VALUES (%s, %s)", "update": "UPDATE prop SET v = %s "
                         "WHERE k = %s", "delete": "DELETE FROM prop WHERE k = %s",
                         "rekey": "UPDATE IGNORE prop SET k = %s WHERE k = %s"}[op]
            args = {"insert": (key, value), "update": (value, key), "delete": (key,), "rekey": (other, key)}[op]
            mysql_db.run(statement, args=args)
        assert mysql_sync_service.main([]) == 0
        mine = sorted(map(tuple, mysql_rows(mysql_db, "prop")))
        assert sorted(pg_db.query("SELECT k, v FROM src.prop")) == mine
    assert [r["status"] for r in pg_rows(pg_db, "SELECT status FROM datasync.runs")] == ["ok"] * (len(runs) + 1)
