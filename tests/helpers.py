"""Helpers shared by the test modules: waiting, running a service in the background, MySQL and
PostgreSQL look-ups by column name (never by position), and sessions that hold locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg2.extras
import pymysql.cursors

from tests.conftest import ROOT

LOG_COLUMNS = "source_file, file_version, line_no, machine_id, logged_at::text AS logged_at, level, message, fields"


def wait_for(predicate, timeout=60, what="condition", every=0.02):
    """Poll ``predicate`` every ``every`` seconds until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_service(script, env, *args):
    """A service running in the background (stdout and stderr together), as cron would start it."""
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(ROOT))


def start_sync(env, *args):
    """mysql_sync_service.py in the background (stdout and stderr together)."""
    return subprocess.Popen([sys.executable, str(ROOT / "mysql_sync_service.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc, sig=signal.SIGTERM, timeout=60):
    """Send ``sig`` and return (exit code, output)."""
    os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def pg_rows(pg_db, statement, args=None):
    """Rows as dicts (columns by name, never by position)."""
    with pg_db.connect() as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(statement, args)
        rows = [dict(r) for r in cur.fetchall()]
    conn.close()
    return rows


def pick(row, *columns):
    """Some columns of a row, as a tuple to compare."""
    return tuple(row[c] for c in columns)


def table_state(pg_db, table):
    """The state row of a synced MySQL table (datasync.mysql_tables), as a dict."""
    rows = pg_rows(pg_db, "SELECT * FROM datasync.mysql_tables WHERE source_table = %s", (table,))
    return rows[0] if rows else None


def logs(pg_db, where="true", args=None):
    """machine_logs rows (logged_at as text), in file, version and line order."""
    return pg_rows(pg_db, f"SELECT {LOG_COLUMNS} FROM machine_logs WHERE {where} "
                   "ORDER BY source_file, file_version, line_no", args)


def rejects(pg_db):
    """machine_log_rejects rows, in file and line order."""
    return pg_rows(pg_db, "SELECT source_file, file_version, line_no, raw_line, reason FROM machine_log_rejects "
                   "ORDER BY source_file, line_no")


def ledger(pg_db, path):
    """The ledger row (datasync.ftp_files) of a remote path, or None."""
    found = pg_rows(pg_db, "SELECT * FROM datasync.ftp_files WHERE remote_path = %s", (path,))
    return found[0] if found else None


def hold(pg_db, statement, args=None):
    """A test session that ran ``statement`` in a transaction it keeps open (holding its locks); close() ends it."""
    conn = pg_db.connect()
    conn.cursor().execute(statement, args)
    return conn


def backend_waiting(pg_db, application="datasync mysql_sync", query_prefix="", wait_event_type="Lock"):
    """A predicate: the service's session in this test's database runs a statement starting with
    ``query_prefix`` and, unless ``wait_event_type`` is None, waits for an event of that type."""
    condition = "AND wait_event_type = %s" if wait_event_type else ""
    args = (application, query_prefix + "%", *((wait_event_type,) if wait_event_type else ()))
    return lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                               f"application_name = %s AND state = 'active' AND query LIKE %s {condition}",
                               args) > 0


def terminate(pg_db, application):
    """End the sessions of ``application`` in this test's database that wait for a lock, as an administrator
    (or a failover) would: pg_terminate_backend.  Returns how many were ended."""
    return pg_db.value("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND application_name = %s AND wait_event_type = 'Lock'",
                       (application,))


def mysql_statements(mysql_db):
    """Statements running on MySQL for the test database, other than the one asking: a tuple of dicts
    with the PROCESSLIST columns ID, COMMAND, STATE and INFO."""
    conn = mysql_db.connect(cursorclass=pymysql.cursors.DictCursor)
    with conn.cursor() as cur:
        cur.execute("SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST WHERE DB = %s "
                    "AND ID <> CONNECTION_ID() AND COMMAND NOT IN ('Sleep', 'Daemon')", (mysql_db.name,))
        rows = tuple(cur.fetchall())
    conn.close()
    return rows


LAUNCHER = """import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
json.dump({"code": os.waitstatus_to_exitcode(status), "peak_kb": usage.ru_maxrss, "out": out.decode()}, sys.stdout)
"""


def run_measured(script, env, *args):
    """(exit code, output, peak RSS in MB) of a service run.  A small launcher starts it: a child forked
    straight from pytest would count pytest's own memory (before its exec) in its peak."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, str(ROOT / script), *args], env=env,
                          capture_output=True, text=True, cwd=str(ROOT), timeout=600)
    result = json.loads(done.stdout)
    return result["code"], result["out"], result["peak_kb"] / 1024
