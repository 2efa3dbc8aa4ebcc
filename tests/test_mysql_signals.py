"""SIGTERM and SIGINT at every phase of a table's sync, also while blocked behind another session's lock:
the blocked statement is cancelled, nothing is committed, and the next run does the work.  Lock waits
are bounded by LOCK_TIMEOUT and logged with what is waited for.

The proof that a blocked statement was cancelled is that the process exits while the test still
holds the lock (no clock is read)."""

from __future__ import annotations

import signal

import pytest

from tests.helpers import mysql_statements, start_sync, stop, wait_for

CURSOR = "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
TABLES = {
    "full": "CREATE TABLE t (id INT, v INT)",  # no key: full mode
    "incremental": f"CREATE TABLE t (id INT PRIMARY KEY, v INT, {CURSOR})",
    "diff": "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
}
# what the test session holds in PostgreSQL to block each phase
PATIENT = {"LOCK_TIMEOUT": "3600"}  # only the cancel can end the waits below (stop() waits up to 60 s)
BLOCKERS = {
    "full reload (DELETE)": ("full", "LOCK TABLE src.t IN SHARE MODE"),
    "incremental merge (upsert)": ("incremental", "SELECT * FROM src.t WHERE id = 1 FOR UPDATE"),
    "diff merge (UPDATE)": ("diff", "SELECT * FROM src.t WHERE id = 1 FOR UPDATE"),
    "state write (commit)": ("diff", "SELECT * FROM datasync.mysql_tables WHERE source_table = 't' FOR UPDATE"),
}


def waiting_in_postgres(pg_db):
    return lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                               "application_name = 'datasync mysql_sync' AND wait_event_type = 'Lock'") > 0


def waiting_in_mysql(mysql_db):
    return lambda: any("lock" in (s["STATE"] or "").lower() for s in mysql_statements(mysql_db)
                       if s["COMMAND"] == "Query")


def two_rows(mysql_db, sync, kind):
    mysql_db.run(TABLES[kind], "INSERT INTO t (id, v) VALUES (1, 1), (2, 2)")
    assert sync().code == 0
    mysql_db.run("UPDATE t SET v = v + 10")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("phase", list(BLOCKERS))
def test_a_signal_while_blocked_in_postgresql_rolls_back(sync_env, sync, mysql_db, pg_db, phase, sig):
    kind, blocker = BLOCKERS[phase]
    two_rows(mysql_db, sync, kind)
    holder = pg_db.connect()
    try:
        holder.cursor().execute(blocker)
        proc = start_sync({**sync_env, **PATIENT})
        wait_for(waiting_in_postgres(pg_db), what=f"the sync to wait in {phase}")
        code, out = stop(proc, sig)  # while the lock is still held
    finally:
        holder.rollback()
        holder.close()
    assert code == 143, out
    assert f"stopped by {sig.name}" in out
    assert mysql_statements(mysql_db) == ()  # the digest or key-set query beside the merge was killed too
    assert pg_db.query("SELECT id, v FROM src.t ORDER BY id") == [(1, 1), (2, 2)]  # nothing committed
    assert pg_db.value("SELECT status FROM datasync.runs ORDER BY id DESC LIMIT 1") == "interrupted"
    again = sync()
    assert again.code == 0, again.out
    assert pg_db.query("SELECT id, v FROM src.t ORDER BY id") == [(1, 11), (2, 12)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_blocked_in_mysql_kills_the_statement(sync_env, sync, mysql_db, pg_db, sig):
    two_rows(mysql_db, sync, "diff")
    holder = mysql_db.connect()
    try:
        holder.cursor().execute("LOCK TABLES t WRITE")  # the sync's read waits for a metadata lock
        proc = start_sync({**sync_env, **PATIENT})
        wait_for(waiting_in_mysql(mysql_db), what="the sync to wait for MySQL's metadata lock")
        code, out = stop(proc, sig)
        assert [s for s in mysql_statements(mysql_db) if s["COMMAND"] == "Query"] == []  # killed, not left waiting
    finally:
        holder.cursor().execute("UNLOCK TABLES")
        holder.close()
    assert code == 143 and f"stopped by {sig.name}" in out, out
    assert pg_db.query("SELECT id, v FROM src.t ORDER BY id") == [(1, 1), (2, 2)]
    assert sync().code == 0


def test_postgresql_lock_waits_are_logged_and_bounded(sync, mysql_db, pg_db):
    mysql_db.run(TABLES["full"], "INSERT INTO t VALUES (1, 1)", "CREATE TABLE other (id INT PRIMARY KEY)")
    assert sync().code == 0
    holder = pg_db.connect()
    try:
        holder.cursor().execute("SET application_name = 'a long report'")
        holder.cursor().execute("LOCK TABLE src.t IN SHARE MODE")
        result = sync(LOCK_TIMEOUT="7")
    finally:
        holder.rollback()
        holder.close()
    assert result.code == 1
    assert result.lines("PostgreSQL: waiting for a lock on src.t held by pid") and \
        result.lines("(a long report, idle in transaction): LOCK TABLE src.t IN SHARE MODE")
    assert result.lines("t: failed: waited LOCK_TIMEOUT for a PostgreSQL lock")
    assert result.lines("other: diff ok")


def test_mysql_metadata_lock_waits_are_logged_and_bounded(sync, mysql_db, pg_db):
    mysql_db.run(TABLES["diff"], "INSERT INTO t VALUES (1, 1)", "CREATE TABLE other (id INT PRIMARY KEY)")
    assert sync().code == 0
    holder = mysql_db.connect()
    try:
        holder.cursor().execute("LOCK TABLES t WRITE")
        result = sync(LOCK_TIMEOUT="7")
    finally:
        holder.cursor().execute("UNLOCK TABLES")
        holder.close()
    assert result.code == 1
    assert result.lines("MySQL: waiting for table metadata lock")
    assert result.lines("waited LOCK_TIMEOUT for a MySQL lock another session holds")
    assert result.lines("other: diff ok")
