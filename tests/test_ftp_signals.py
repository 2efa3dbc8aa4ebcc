"""SIGTERM and SIGINT at every phase of a file's load, also while blocked: exit 143, nothing committed.

Phases: the COPY waiting for a table lock, the ledger row waiting for a row lock, the delete
(or move) held by the server, and the ledger's note of the delete waiting for a row lock.  (The
COPY while it streams is tested in test_ftp_faults.py.)  A blocked statement is proven cancelled
by the process exiting while the test still holds the lock: LOCK_TIMEOUT and CONNECT_TIMEOUT are
far longer than any test waits.  The next run then loads every line exactly once and removes the
file when asked.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from tests.conftest import ftp_base_env
from tests.helpers import backend_waiting, hold, ledger, logs, pick, start_service, wait_for

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]
PATIENT = {"LOCK_TIMEOUT": "3600", "CONNECT_TIMEOUT": "3600"}  # only a signal can end the waits below


def stop_while_blocked(proc, sig, blocked):
    """Wait until ``blocked()``, send ``sig``; return the service's output once it exited (the block still on)."""
    wait_for(blocked, what="the service to block")
    os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert f"stopped by {sig.name}" in out
    return out


def last_run_status(pg_db):
    return pg_db.value("SELECT status FROM datasync.runs ORDER BY id DESC LIMIT 1")


@pytest.mark.parametrize("sig", SIGNALS)
def test_stopped_while_the_copy_waits_for_a_table_lock(inbox, ingest, pg_db, ftp_server, sig):
    assert ingest().code == 0  # the tables exist
    inbox.put("a.log", "one\ntwo\n")
    holder = hold(pg_db, "LOCK TABLE machine_logs IN SHARE MODE")
    try:
        proc = start_service("ftp_log_service.py", ftp_base_env(pg_db, ftp_server, DELETE_AFTER_SYNC="true", **PATIENT))
        stop_while_blocked(proc, sig, backend_waiting(pg_db, "datasync ftp_log", "COPY", "Lock"))
    finally:
        holder.close()
    assert not logs(pg_db) and ledger(pg_db, "/a.log") is None and inbox.files() == ["a.log"]
    assert last_run_status(pg_db) == "interrupted"
    again = ingest(DELETE_AFTER_SYNC="true")
    assert again.code == 0 and [r["message"] for r in logs(pg_db)] == ["one", "two"] and inbox.files() == []


@pytest.mark.parametrize("sig", SIGNALS)
def test_stopped_while_the_ledger_row_waits_for_a_row_lock(inbox, ingest, pg_db, ftp_server, sig):
    inbox.put("a.log", "one\ntw")
    assert ingest().code == 0
    before = ledger(pg_db, "/a.log")
    inbox.append("a.log", "o\nthree\n")
    holder = hold(pg_db, "SELECT 1 FROM datasync.ftp_files WHERE remote_path = %s FOR UPDATE", ("/a.log",))
    try:
        proc = start_service("ftp_log_service.py", ftp_base_env(pg_db, ftp_server, DELETE_AFTER_SYNC="true", **PATIENT))
        out = stop_while_blocked(proc, sig, backend_waiting(pg_db, "datasync ftp_log", "INSERT INTO", "Lock"))
    finally:
        holder.close()
    assert "resumed" not in out  # the load's log line comes only after its commit
    assert [r["message"] for r in logs(pg_db)] == ["one"]  # this run's rows were rolled back with the ledger row
    assert ledger(pg_db, "/a.log") == before and inbox.files() == ["a.log"]
    again = ingest(DELETE_AFTER_SYNC="true")
    assert again.code == 0 and again.lines("/a.log: resumed, version 1, lines 2-3: 2 loaded")
    assert [pick(r, "line_no", "message") for r in logs(pg_db)] == [(1, "one"), (2, "two"), (3, "three")]
    assert inbox.files() == []


@pytest.mark.parametrize("archive", [False, True], ids=["delete", "archive"])
@pytest.mark.parametrize("sig", SIGNALS)
def test_stopped_while_the_server_holds_the_delete(inbox, ingest, pg_db, ftp_server, sig, archive):
    inbox.put("a.log", "one\n")
    arrived, release = threading.Event(), threading.Event()
    ftp_server.hooks["RNFR" if archive else "DELE"] = lambda path: (arrived.set(), release.wait(60))
    env = {"DELETE_AFTER_SYNC": "true", **({"FTP_ARCHIVE_DIR": "/archive"} if archive else {}), **PATIENT}
    try:
        proc = start_service("ftp_log_service.py", ftp_base_env(pg_db, ftp_server, **env))
        stop_while_blocked(proc, sig, arrived.is_set)
    finally:
        release.set()  # the server carries out the delete (or move) the stopped run had sent
    assert pick(ledger(pg_db, "/a.log"), "status", "deleted_at") == ("loaded", None)  # the note never ran
    assert [r["message"] for r in logs(pg_db)] == ["one"] and last_run_status(pg_db) == "interrupted"
    del ftp_server.hooks["RNFR" if archive else "DELE"]
    again = ingest(**env)
    assert again.code == 0, again.out
    assert [r["message"] for r in logs(pg_db)] == ["one"]  # loaded once
    wait_for(lambda: inbox.files() == (["archive/a.log"] if archive else []), timeout=10, what="the held command")


@pytest.mark.parametrize("sig", SIGNALS)
def test_stopped_while_noting_the_delete_waits_for_a_row_lock(inbox, ingest, pg_db, ftp_server, sig):
    inbox.put("a.log", "one\n")
    assert ingest().code == 0  # loaded, not deleted
    holder = hold(pg_db, "SELECT 1 FROM datasync.ftp_files WHERE remote_path = %s FOR UPDATE", ("/a.log",))
    try:
        proc = start_service("ftp_log_service.py", ftp_base_env(pg_db, ftp_server, DELETE_AFTER_SYNC="true", **PATIENT))
        stop_while_blocked(proc, sig, backend_waiting(pg_db, "datasync ftp_log", "UPDATE", "Lock"))
    finally:
        holder.close()
    assert inbox.files() == [] and ledger(pg_db, "/a.log")["status"] == "loaded"  # deleted; the note rolled back
    again = ingest(DELETE_AFTER_SYNC="true")
    assert again.code == 0 and again.lines("files: 0 seen") and [r["message"] for r in logs(pg_db)] == ["one"]
