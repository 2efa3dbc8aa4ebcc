"""The run lifecycle (datasync/runlog.py): a PostgreSQL connection lost outside any table or file -- while
the run reads its state, creates the log tables, or a command waits for a table -- is what the README
says a lost connection is: exit 3, the run recorded 'unreachable', and the next run does the work.

The moment is chosen, not timed: the test holds a lock the service's session then waits for, and ends
that session (pg_terminate_backend) while it waits."""

from __future__ import annotations

from datasync.postgres import LOCK_NAMESPACE, lock_key
from tests.conftest import ftp_base_env
from tests.helpers import backend_waiting, hold, logs, pg_rows, pick, start_service, start_sync, terminate, wait_for

MYSQL = "datasync mysql_sync"
FTP = "datasync ftp_log"


def runs(pg_db):
    return [pick(r, "status", "exit_code") for r in pg_rows(pg_db, "SELECT status, exit_code FROM datasync.runs "
                                                                   "ORDER BY id")]


def lose_postgresql_while_waiting(pg_db, start, application, query_prefix, blocker, args=None):
    """Hold ``blocker``, ``start()`` the service, wait until its session waits behind the blocker running
    ``query_prefix``..., end that session, and return the service's (exit code, output)."""
    holder, proc = hold(pg_db, blocker, args), None
    try:
        proc = start()
        wait_for(backend_waiting(pg_db, application, query_prefix), what=f"{application} to wait in {query_prefix}")
        assert terminate(pg_db, application) == 1
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc is not None and proc.poll() is None:  # the test failed before the service ended
            proc.kill()
            proc.communicate()
        holder.rollback()
        holder.close()
    return proc.returncode, out


def test_mysql_sync_losing_postgresql_before_the_first_table_exits_3(sync_env, sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
    assert sync().code == 0
    mysql_db.run("INSERT INTO t VALUES (2, 2)")
    # the run reads the table states (to report tables gone from MySQL) before it syncs any table
    code, out = lose_postgresql_while_waiting(
        pg_db, lambda: start_sync({**sync_env, "LOCK_TIMEOUT": "600"}), MYSQL, "SELECT * FROM",
        "LOCK TABLE datasync.mysql_tables IN ACCESS EXCLUSIVE MODE")
    assert code == 3, out
    assert "PostgreSQL connection lost" in out and "unexpected error" not in out
    assert runs(pg_db) == [("ok", 0), ("unreachable", 3)]
    again = sync()
    assert again.code == 0, again.out
    assert pg_db.query("SELECT id, v FROM src.t ORDER BY id") == [(1, 1), (2, 2)]


def test_log_ingestion_losing_postgresql_while_creating_its_tables_exits_3(inbox, pg_db, ftp_server):
    inbox.put("a.log", "2024-03-01 08:00:00 INFO one\n")
    env = ftp_base_env(pg_db, ftp_server)
    code, out = lose_postgresql_while_waiting(
        pg_db, lambda: start_service("ftp_log_service.py", {**env, "LOCK_TIMEOUT": "600"}), FTP,
        "SELECT pg_advisory_xact_lock", "SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, lock_key("ftp-ddl")))
    assert code == 3, out
    assert "PostgreSQL connection lost" in out and "unexpected error" not in out
    assert runs(pg_db) == [("unreachable", 3)]
    again = start_service("ftp_log_service.py", env)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert [r["message"] for r in logs(pg_db)] == ["one"]


def test_verify_losing_postgresql_exits_3(sync_env, sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    assert sync().code == 0
    code, out = lose_postgresql_while_waiting(
        pg_db, lambda: start_sync({**sync_env, "LOCK_TIMEOUT": "600"}, "--verify"), f"{MYSQL} (read-only)",
        "SELECT pg_advisory_xact_lock", "SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key("mysql:src.t")))
    assert code == 3, out
    assert "PostgreSQL connection lost" in out and "unexpected error" not in out

