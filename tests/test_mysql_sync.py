"""Sync modes, schema drift, names, selection and the operator commands, on real servers."""

from __future__ import annotations

import psycopg2
import pytest

from tests.helpers import table_state

ORDERS = ("CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40) NOT NULL, amount DECIMAL(10,2), "
          "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
          "UNIQUE KEY uq_customer (customer), KEY idx_amount (amount))")


def orders(mysql_db, n=5):
    mysql_db.run(ORDERS)
    mysql_db.many("INSERT INTO orders (id, customer, amount) VALUES (%s, %s, %s)",
                  [(i, f"c{i}", i * 1.5) for i in range(1, n + 1)])


def test_incremental_propagates_inserts_updates_deletes(sync, mysql_db, pg_db):
    orders(mysql_db)
    first = sync()
    assert first.code == 0, first.out
    assert first.lines("orders: full load (new table)")
    mysql_db.run("UPDATE orders SET amount = 99 WHERE id = 2", "DELETE FROM orders WHERE id IN (3, 4)",
                 "INSERT INTO orders (id, customer, amount) VALUES (6, 'c6', 6)")
    second = sync()
    assert second.code == 0, second.out
    assert second.lines("orders: incremental ok: 1 inserted, 1 updated, 2 deleted")
    assert pg_db.query("SELECT id, amount::text FROM src.orders ORDER BY id") == [
        (1, "1.50"), (2, "99.00"), (5, "7.50"), (6, "6.00")]
    third = sync()  # nothing changed: the lookback re-reads rows but rewrites none
    assert third.lines("orders: incremental ok: 0 inserted, 0 updated, 0 deleted")
    assert sync("--verify").code == 0


def test_incremental_swaps_unique_values_and_respects_skip_deletes(sync, mysql_db, pg_db):
    orders(mysql_db)
    assert sync().code == 0
    mysql_db.run("UPDATE orders SET customer = 'tmp' WHERE id = 1", "UPDATE orders SET customer = 'c1' WHERE id = 2",
                 "UPDATE orders SET customer = 'c2' WHERE id = 1", "DELETE FROM orders WHERE id = 5")
    result = sync(MYSQL_SKIP_DELETES="ord*")
    assert result.code == 0, result.out
    assert pg_db.query("SELECT id, customer FROM src.orders ORDER BY id") == [
        (1, "c2"), (2, "c1"), (3, "c3"), (4, "c4"), (5, "c5")]


def test_late_commit_inside_lookback_is_not_missed(sync, mysql_db, pg_db):
    orders(mysql_db)
    assert sync().code == 0
    # a transaction that committed late, stamped 100 s before the newest row already synced
    mysql_db.run("INSERT INTO orders (id, customer, amount, updated_at) "
                 "SELECT 50, 'late', 1, MAX(updated_at) - INTERVAL 100 SECOND FROM orders")
    assert sync().code == 0
    assert pg_db.value("SELECT customer FROM src.orders WHERE id = 50") == "late"


def test_full_mode_swaps_atomically_and_keeps_grants(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE nokey (a INT, b VARCHAR(10))", "INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL)")
    assert sync().code == 0
    pg_db.query("DROP ROLE IF EXISTS ds_reader; CREATE ROLE ds_reader")
    try:
        pg_db.query("GRANT USAGE ON SCHEMA src TO ds_reader; GRANT SELECT ON src.nokey TO ds_reader")
        mysql_db.run("DELETE FROM nokey WHERE a = 2", "INSERT INTO nokey VALUES (3, 'y')")
        result = sync()
        assert result.lines("nokey: full ok: 3 inserted")
        assert pg_db.query("SELECT a, b FROM src.nokey ORDER BY a") == [(1, "x"), (1, "x"), (3, "y")]
        assert pg_db.value("SELECT has_table_privilege('ds_reader', 'src.nokey', 'SELECT')")
        assert pg_db.value("SELECT count(*) FROM pg_class WHERE relname LIKE '_datasync_new_%'") == 0
    finally:
        pg_db.query("DROP OWNED BY ds_reader; DROP ROLE ds_reader")


def test_append_mode_copies_only_new_keys(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE audit_log (id BIGINT PRIMARY KEY AUTO_INCREMENT, msg TEXT)",
                 "INSERT INTO audit_log (msg) VALUES ('a'), ('b')")
    assert sync(MYSQL_SYNC_MODES="audit_log=append").code == 0
    mysql_db.run("INSERT INTO audit_log (msg) VALUES ('c')", "UPDATE audit_log SET msg = 'changed' WHERE id = 1")
    result = sync(MYSQL_SYNC_MODES="audit_log=append")
    assert result.lines("audit_log: append ok: 1 inserted")
    assert pg_db.query("SELECT id, msg FROM src.audit_log ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]


def test_mode_overrides_and_skip(sync, mysql_db, pg_db):
    orders(mysql_db)
    mysql_db.run("CREATE TABLE huge_blobs (id INT PRIMARY KEY, b LONGBLOB)",
                 "CREATE TABLE changes (id INT PRIMARY KEY, changed_on DATETIME(3))",
                 "INSERT INTO changes VALUES (1, '2024-01-01')")
    result = sync(MYSQL_SYNC_MODES="orders=full,huge_blobs=skip,changes=incremental:changed_on")
    assert result.code == 0, result.out
    assert result.lines("orders: full ok") and result.lines("changes: full load (new table)")
    assert pg_db.value("SELECT to_regclass('src.huge_blobs')") is None
    assert [line for line in result.lines("summary |") if "huge_blobs" in line][0].rstrip().endswith("skipped")
    bad = sync(MYSQL_SYNC_MODES="orders=append:customer")
    assert bad.code == 1 and bad.lines("table 'orders' cannot be synced: append mode needs an integer column")


def test_schema_drift(sync, mysql_db, pg_db):
    orders(mysql_db, 3)
    assert sync().code == 0
    mysql_db.run("ALTER TABLE orders ADD COLUMN region VARCHAR(10) NOT NULL DEFAULT 'EU'")
    added = sync()
    assert added.lines("orders: new column(s) region: re-reading every row")
    assert pg_db.query("SELECT DISTINCT region FROM src.orders") == [("EU",)]
    mysql_db.run("ALTER TABLE orders DROP COLUMN amount", "INSERT INTO orders (id, customer) VALUES (9, 'c9')")
    dropped = sync()
    assert dropped.lines("orders: column amount no longer exists in MySQL; kept in PostgreSQL")
    assert pg_db.query("SELECT id, amount FROM src.orders WHERE id IN (1, 9) ORDER BY id") == [(1, 1.5), (9, None)]
    mysql_db.run("ALTER TABLE orders MODIFY customer VARCHAR(80) NOT NULL")
    retyped = sync()
    assert retyped.lines("orders: full reload in place (type of column(s) customer changed)")
    assert pg_db.value("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                       "WHERE attrelid = 'src.orders'::regclass AND attname = 'customer'") == "character varying(80)"


def test_weird_identifiers(sync, mysql_db, pg_db):
    long_name = "t" + "x" * 63
    mysql_db.run("CREATE TABLE `Order Lines-ü` (`Select` INT PRIMARY KEY, `From Date` DATE, `naïve-col` TEXT)",
                 "INSERT INTO `Order Lines-ü` VALUES (1, '2024-01-01', 'ok')",
                 f"CREATE TABLE `{long_name}` (`{'c' * 64}` INT)", f"INSERT INTO `{long_name}` VALUES (5)",
                 "CREATE TABLE `Dup` (a INT)", "CREATE TABLE `dup` (a INT)",
                 "CREATE TABLE `back``tick` (a INT)")
    result = sync()
    assert result.code == 1
    assert pg_db.query('SELECT "select", "from date", "naïve-col" FROM src."order lines-ü"') == [
        (1, __import__("datetime").date(2024, 1, 1), "ok")]
    short = pg_db.query("SELECT relname FROM pg_class WHERE relname LIKE 'txxx%'")[0][0]
    assert len(short.encode()) == 63 and short.startswith("t" + "x" * 53 + "_")
    assert result.lines("table 'Dup' cannot be synced: 'dup' and 'Dup' both become 'dup'") or \
        result.lines("table 'Dup' cannot be synced: 'Dup' and 'dup' both become 'dup'")
    assert pg_db.value('SELECT count(*) FROM src."back`tick"') == 0


def test_table_selection_and_views(sync, mysql_db, pg_db):
    orders(mysql_db, 2)
    mysql_db.run("CREATE TABLE tmp_scratch (a INT)", "CREATE TABLE customers (id INT PRIMARY KEY)",
                 "CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 1")
    result = sync(MYSQL_TABLES="*", MYSQL_EXCLUDE_TABLES="tmp_*")
    assert result.code == 0
    assert sorted(r[0] for r in pg_db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'src'")) == [
        "customers", "orders"]
    only = sync("--tables", "cust*", "--full-refresh")
    assert only.lines("customers: diff ok") and not only.lines("orders:")
    assert sync("--tables", "nope").code == 2


def test_dry_run_writes_nothing_and_status_reports(sync, mysql_db, pg_db):
    orders(mysql_db, 2)
    dry = sync("--dry-run")
    assert dry.code == 0, dry.out
    assert 'CREATE TABLE "src"."orders"' in dry.out and "PRIMARY KEY" in dry.out
    assert pg_db.value("SELECT count(*) FROM pg_namespace WHERE nspname IN ('src', 'datasync')") == 0
    assert "no runs recorded yet" in sync("--status").out
    assert sync().code == 0
    status = sync("--status")
    assert status.code == 0 and "orders" in status.out and "incremental" in status.out and "updated_at" in status.out
    assert pg_db.value("SELECT status FROM datasync.runs ORDER BY id DESC LIMIT 1") == "ok"
    details = pg_db.value("SELECT details FROM datasync.runs ORDER BY id DESC LIMIT 1")
    assert details[0]["table"] == "orders" and details[0]["inserted"] == 2 and details[0]["status"] == "ok"


def test_status_escapes_control_characters_in_errors(sync, mysql_db, pg_db):
    """A key with a line break, quoted in a table's error, cannot forge a line of --status."""
    forged = "2024-03-01 08:00:00 ERROR forged"
    mysql_db.run("CREATE TABLE texts (code VARCHAR(60) PRIMARY KEY, body TEXT)", "INSERT INTO texts VALUES ('ok', 'a')")
    assert sync().code == 0
    mysql_db.run("INSERT INTO texts VALUES (%s, CONCAT('a', CHAR(0), 'b'))", args=(f"bad\n{forged}",))
    result = sync()
    assert result.code == 1 and result.lines("texts: failed: table 'texts': column 'body' contains a NUL byte")
    assert f"code=bad\n{forged}" in table_state(pg_db, "texts")["last_error"]  # stored as it is
    status = sync("--status")
    assert status.code == 0 and f"code=bad\\n{forged}" in status.out
    assert [line for line in status.out.splitlines() if line.startswith(forged)] == []


def test_verify_detects_a_difference(sync, mysql_db, pg_db):
    orders(mysql_db, 50)
    assert sync().code == 0
    assert sync("--verify").code == 0
    pg_db.query("UPDATE src.orders SET amount = amount + 1 WHERE id = 7")
    result = sync("--verify")
    assert result.code == 1
    assert result.lines("orders: differs: MySQL 50 rows, PostgreSQL 50 rows, 1 of 64 chunks differ")


def test_locked_table_is_skipped(sync, mysql_db, pg_db):
    from datasync.postgres import LOCK_NAMESPACE, lock_key

    orders(mysql_db, 2)
    mysql_db.run("CREATE TABLE other (id INT PRIMARY KEY)")
    holder = pg_db.connect()
    holder.cursor().execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key("mysql:src.orders")))
    try:
        result = sync()
    finally:
        holder.close()
    assert result.code == 0
    assert result.lines("orders: another run is syncing this table; skipped")
    assert pg_db.value("SELECT to_regclass('src.orders')") is None
    assert pg_db.value("SELECT to_regclass('src.other')") is not None


def test_the_watermark_is_the_newest_cursor_and_the_key_exists(sync, mysql_db, pg_db):
    orders(mysql_db, 3)
    assert sync().code == 0
    saved = table_state(pg_db, "orders")
    newest = pg_db.value("SELECT max(updated_at) AT TIME ZONE 'UTC' FROM src.orders")
    assert (saved["mode"], saved["cursor_column"], saved["rows_inserted"]) == ("incremental", "updated_at", 3)
    assert saved["watermark"] == newest.strftime("%Y-%m-%d %H:%M:%S.%f")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        pg_db.query("INSERT INTO src.orders (id, customer, updated_at) VALUES (1, 'x', now())")
