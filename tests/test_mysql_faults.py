"""Faults: unreachable servers, kill -9 mid-COPY, connections dropped mid-run."""

from __future__ import annotations

import signal

import pytest

from tests import servers
from tests.conftest import PgDB
from tests.helpers import pg_rows, pick, wait_for
from tests.helpers import start_sync as start

BIG = ("CREATE TABLE big (id INT PRIMARY KEY, payload VARCHAR(100), updated_at TIMESTAMP(6) NOT NULL "
       "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))")


def fill_big(mysql_db, rows=400_000):
    """``rows`` rows, made by doubling inside MySQL (portable, fast)."""
    mysql_db.run(BIG, "INSERT INTO big (id, payload) VALUES (1, 'original')")
    n = 1
    while n < rows:
        mysql_db.run(f"INSERT INTO big (id, payload) SELECT id + {n}, payload FROM big WHERE id + {n} <= {rows}")
        n *= 2


def copying(pg_db):
    """A COPY of our service into this test's database (other runs may share the server)."""
    return lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                               "application_name = 'datasync mysql_sync' AND state = 'active' "
                               "AND query LIKE 'COPY%%'") > 0


def test_unreachable_servers_exit_3_without_secrets(sync, pg_db):
    result = sync(MYSQL_PORT=servers.free_port(), MYSQL_PASSWORD="s3cr3t-Value!")
    assert result.code == 3
    assert result.lines("cannot connect to MySQL at 127.0.0.1") and result.lines("after 2 attempt(s)")
    assert result.lines("(attempt 1 of 2, retrying in 0s)")
    assert "s3cr3t-Value!" not in result.out
    runs = pg_rows(pg_db, "SELECT status, exit_code, finished_at IS NOT NULL AS finished FROM datasync.runs")
    assert [pick(r, "status", "exit_code", "finished") for r in runs] == [("unreachable", 3, True)]  # not 'running'
    pg = sync(POSTGRES_PORT=servers.free_port(), POSTGRES_PASSWORD="pg-s3cret")
    assert pg.code == 3 and pg.lines("cannot connect to PostgreSQL at 127.0.0.1") and "pg-s3cret" not in pg.out


def test_kill_9_mid_copy_leaves_tables_as_before(sync_env, sync, mysql_db, pg_db):
    fill_big(mysql_db)
    assert sync().code == 0
    watermark = pg_db.value("SELECT watermark FROM datasync.mysql_tables")
    mysql_db.run("UPDATE big SET payload = 'changed'")
    proc = start(sync_env)
    wait_for(copying(pg_db), what="the COPY to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert pg_db.value("SELECT count(*) FROM src.big WHERE payload = 'changed'") == 0
    assert pg_db.value("SELECT watermark FROM datasync.mysql_tables") == watermark
    result = sync()
    assert result.code == 0, result.out
    assert pg_db.value("SELECT count(*) FROM src.big WHERE payload = 'changed'") == 400_000
    assert pg_db.value("SELECT count(*) FROM datasync.runs WHERE status = 'aborted'") == 1


def test_kill_9_during_first_full_load_leaves_nothing(sync_env, sync, mysql_db, pg_db):
    fill_big(mysql_db)
    proc = start(sync_env)
    wait_for(copying(pg_db), what="the COPY to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert pg_db.value("SELECT count(*) FROM pg_class WHERE relname LIKE '%%big%%' OR relname LIKE '_datasync%%'") == 0
    assert sync().code == 0
    assert pg_db.value("SELECT count(*) FROM src.big") == 400_000


def test_sigterm_rolls_back_and_exits_143(sync_env, mysql_db, pg_db):
    fill_big(mysql_db)
    proc = start(sync_env)
    wait_for(copying(pg_db), what="the COPY to start")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    assert "stopped by SIGTERM" in out
    assert pg_db.value("SELECT to_regclass('src.big')") is None
    assert pg_db.value("SELECT status FROM datasync.runs") == "interrupted"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("mode", ["full", "incremental", "diff"])
def test_a_signal_mid_copy_keeps_the_copy_as_it_was(sync_env, sync, mysql_db, pg_db, mode, sig):
    """A reload in place, an incremental stage and a diff re-read, each stopped while its COPY runs: the
    copy keeps every row it had, in the same table, and the next run does the work."""
    fill_big(mysql_db)
    env = {**sync_env, "MYSQL_SYNC_MODES": f"big={mode}"}
    assert sync(MYSQL_SYNC_MODES=f"big={mode}").code == 0
    oid = pg_db.value("SELECT 'src.big'::regclass::oid")
    mysql_db.run("UPDATE big SET payload = 'changed'")  # every row: the whole table travels again
    proc = start(env)
    wait_for(copying(pg_db), what="the COPY to start")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    assert f"stopped by {sig.name}" in out
    assert pg_db.query("SELECT payload, count(*) FROM src.big GROUP BY 1") == [("original", 400_000)]
    assert pg_db.value("SELECT 'src.big'::regclass::oid") == oid
    assert pg_db.value("SELECT status FROM datasync.runs ORDER BY id DESC LIMIT 1") == "interrupted"
    again = sync(MYSQL_SYNC_MODES=f"big={mode}")
    assert again.code == 0, again.out
    assert pg_db.query("SELECT payload, count(*) FROM src.big GROUP BY 1") == [("changed", 400_000)]


def test_mysql_connection_killed_mid_read_is_retried(sync_env, mysql_db, pg_db):
    fill_big(mysql_db)
    proc = start(sync_env)
    admin = mysql_db.connect()

    def reading():
        with admin.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST "
                        "WHERE DB = %s AND INFO LIKE 'SELECT CONCAT_WS%%'", (mysql_db.name,))
            row = cur.fetchone()
        if row:
            admin.cursor().execute(f"KILL CONNECTION {row[0]}")
        return bool(row)

    wait_for(reading, what="the streaming SELECT")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "big: MySQL connection lost" in out and "reconnecting and trying again" in out
    assert pg_db.value("SELECT count(*) FROM src.big") == 400_000


@pytest.fixture
def private_pg():
    server = servers.start_private_postgres()
    yield PgDB(server, "postgres")
    server.stop()


def test_postgres_restarted_mid_run_is_retried(sync_env, mysql_db, private_pg):
    fill_big(mysql_db)
    env = {**sync_env, "POSTGRES_PORT": str(private_pg.server.port), "POSTGRES_DB": "postgres",
           "CONNECT_RETRIES": "10", "CONNECT_RETRY_DELAY": "0.5"}
    proc = start(env)
    wait_for(copying(private_pg), what="the COPY to start")
    private_pg.server.restart()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "big: PostgreSQL connection lost" in out
    assert private_pg.value("SELECT count(*) FROM src.big") == 400_000
    assert private_pg.value("SELECT count(*) FROM pg_class WHERE relname LIKE '_datasync%%'") == 0


def test_merge_failing_while_mysql_counts_fails_only_that_table(sync, mysql_db, pg_db):
    """The delete check's COUNT(*) runs beside the PostgreSQL merge; a failed merge abandons it cleanly."""
    fill_big(mysql_db)
    mysql_db.run("UPDATE big SET updated_at = '2024-01-01'",  # old rows: the next run reads only what changes
                 "CREATE TABLE later (id INT PRIMARY KEY, v INT, updated_at TIMESTAMP(6) NOT NULL "
                 "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
                 "INSERT INTO later (id, v) VALUES (1, 1), (2, 2)")
    assert sync().code == 0
    pg_db.query("CREATE FUNCTION src.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'merge refused'; END$$")
    pg_db.query("CREATE TRIGGER refuse BEFORE UPDATE ON src.big FOR EACH ROW EXECUTE FUNCTION src.refuse()")
    mysql_db.run("UPDATE big SET payload = 'changed' WHERE id <= 10", "DELETE FROM big WHERE id = 400000",
                 "UPDATE later SET v = 20 WHERE id = 2", "DELETE FROM later WHERE id = 1")
    result = sync()
    assert result.code == 1, result.out
    assert result.lines("big: failed: PostgreSQL: merge refused")
    assert result.lines("later: incremental ok: 0 inserted, 1 updated, 1 deleted")
    assert pg_db.query("SELECT id, v FROM src.later") == [(2, 20)]
    assert pg_db.value("SELECT count(*) FROM src.big WHERE payload = 'changed'") == 0  # rolled back
    pg_db.query("DROP TRIGGER refuse ON src.big")
    again = sync()
    assert again.code == 0, again.out
    assert again.lines("big: incremental ok: 0 inserted, 10 updated, 1 deleted")
    assert pg_db.value("SELECT count(*) FROM src.big WHERE payload = 'changed'") == 10
    assert pg_db.value("SELECT count(*) FROM src.big") == 399_999


@pytest.mark.parametrize("variable, value, says", [
    ("MYSQL_DB", "no_such_database", "MySQL at 127.0.0.1"), ("MYSQL_PASSWORD", "wrong-password", "MySQL at"),
    ("POSTGRES_DB", "no_such_database", "PostgreSQL at 127.0.0.1")])
def test_a_refused_login_or_unknown_database_is_a_configuration_error(sync, variable, value, says):
    result = sync(**{variable: value}, CONNECT_RETRIES="3")
    assert result.code == 2, result.out
    assert result.lines(f"{says}") and result.lines("refused the connection")
    assert not result.lines("retrying")  # not retried like an outage
    assert "wrong-password" not in result.out


def test_a_column_dropped_while_the_run_reads_is_reported_as_such(sync_env, mysql_db, pg_db):
    fill_big(mysql_db)
    mysql_db.run("CREATE TABLE zlater (id INT PRIMARY KEY, v INT)", "INSERT INTO zlater VALUES (1, 1)")
    proc = start(sync_env)
    wait_for(copying(pg_db), what="the COPY of the first table")
    mysql_db.run("ALTER TABLE zlater DROP COLUMN v")  # after the run read the catalogue, before it reads zlater
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "zlater: failed: table 'zlater': the table changed in MySQL while it was read" in out
    assert "connection lost" not in out
    assert pg_db.value("SELECT count(*) FROM src.big") == 400_000


def test_verify_waits_for_a_running_sync_at_most_lock_timeout(sync, mysql_db, pg_db):
    from datasync.postgres import LOCK_NAMESPACE, lock_key

    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    assert sync().code == 0
    holder = pg_db.connect()
    holder.autocommit = True
    holder.cursor().execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key("mysql:src.t")))
    try:
        result = sync("--verify", LOCK_TIMEOUT="2")
    finally:
        holder.close()
    assert result.code == 1 and result.lines("t: not verified: a sync has held the table for LOCK_TIMEOUT (2s)")
