"""Helpers shared by test modules: rows by column name, waiting for a condition, services in the background."""

from __future__ import annotations

import subprocess
import sys
import time

from psycopg2.extras import RealDictCursor

from tests.conftest import ROOT

LOG_COLUMNS = "source_file, file_version, line_no, machine_id, logged_at::text AS logged_at, level, message, fields"


def rows(pg_db, statement, args=None):
    """The result rows as dicts, by column name."""
    conn = pg_db.connect()
    try:
        with conn.cursor(cursor_factory=RealDictCursor) as cur:
            cur.execute(statement, args)
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def pick(row, *columns):
    """Some columns of a row, as a tuple to compare."""
    return tuple(row[c] for c in columns)


def logs(pg_db, where="true", args=None):
    """machine_logs rows (logged_at as text), in file, version and line order."""
    return rows(pg_db, f"SELECT {LOG_COLUMNS} FROM machine_logs WHERE {where} "
                "ORDER BY source_file, file_version, line_no", args)


def rejects(pg_db):
    return rows(pg_db, "SELECT source_file, file_version, line_no, raw_line, reason FROM machine_log_rejects "
                "ORDER BY source_file, line_no")


def ledger(pg_db, path):
    """The ledger row (datasync.ftp_files) of a remote path, or None."""
    found = rows(pg_db, "SELECT * FROM datasync.ftp_files WHERE remote_path = %s", (path,))
    return found[0] if found else None


def wait_for(predicate, timeout=60, what="condition"):
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def start_service(script, env, *args):
    """A service running in the background (output collected), as cron would start it."""
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))


def hold(pg_db, statement, args=None):
    """A test session that ran ``statement`` in a transaction it keeps open (holding its locks); close() ends it."""
    conn = pg_db.connect()
    conn.cursor().execute(statement, args)
    return conn


def backend_waiting(pg_db, application, query_prefix, wait_event_type=None):
    """A predicate: the service's PostgreSQL session runs a statement starting with ``query_prefix``
    (and, when given, waits for an event of that type, such as ``Lock``)."""
    condition = "AND wait_event_type = %s" if wait_event_type else ""
    args = (application, query_prefix + "%", *((wait_event_type,) if wait_event_type else ()))
    return lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND "
                               f"state = 'active' AND query LIKE %s {condition}", args) > 0
