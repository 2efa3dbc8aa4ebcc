"""Faults: dropped connections mid-download, PostgreSQL down or lost, kill -9 and SIGTERM mid-COPY."""

from __future__ import annotations

import os
import signal

import pytest

from tests import servers
from tests.conftest import ftp_base_env, run_service
from tests.helpers import backend_waiting, hold, ledger, logs, start_service, wait_for
from tests.remote_servers import PASSWORD, FtpServer, SftpServer, openssh_key

LINE = "2024-03-01 08:00:00 INFO spindle speed within tolerance, cycle {:07d}\n"


def big_log(inbox, name, lines):
    inbox.put(name, "".join(LINE.format(i) for i in range(lines)))


def copying(pg_db):
    return backend_waiting(pg_db, "datasync ftp_log", "COPY", wait_event_type=None)


def start(env):
    return start_service("ftp_log_service.py", env)


def test_ftp_connection_dropped_mid_download_rolls_back_that_file(inbox, ingest, pg_db, ftp_server):
    big_log(inbox, "a_big.log", 5000)
    inbox.put("b_small.log", "x\n")
    ftp_server.drop_after(100_000)
    first = ingest(DELETE_AFTER_SYNC="true")
    assert first.code == 1 and first.lines("/a_big.log: download interrupted")
    assert not [line for line in first.out.splitlines() if line.count("/a_big.log") > 1]  # the path once
    assert ledger(pg_db, "/a_big.log") is None and not logs(pg_db, "source_file = '/a_big.log'")
    assert inbox.files() == ["a_big.log"]  # b_small.log loaded (after a reconnect) and deleted
    second = ingest(DELETE_AFTER_SYNC="true")
    assert second.code == 0 and second.lines("/a_big.log: new, version 1, lines 1-5000: 5000 loaded")
    assert pg_db.value("SELECT count(DISTINCT line_no) FROM machine_logs WHERE source_file = '/a_big.log'") == 5000
    assert len(logs(pg_db)) == 5001 and inbox.files() == []


def test_sftp_connection_dropped_mid_download(inbox, pg_db):
    host_key = openssh_key("ed25519")[1]
    server = SftpServer(inbox.root, host_key)
    try:
        big_log(inbox, "big.log", 20000)
        env = ftp_base_env(pg_db, server, FTP_PROTOCOL="sftp", SFTP_INSECURE_ACCEPT_ANY_HOST_KEY="true")
        server.drop_after = 300_000
        first = run_service("ftp_log_service.py", env, timeout=120)
        assert first.code == 1, first.out
        assert first.lines("/big.log: ") and first.lines("download interrupted")
        assert ledger(pg_db, "/big.log") is None and not logs(pg_db)
        second = run_service("ftp_log_service.py", env, timeout=120)
        assert second.code == 0, second.out
        assert pg_db.value("SELECT count(*) FROM machine_logs") == 20000
    finally:
        server.stop()


def test_postgres_down_deletes_nothing(inbox, ingest):
    inbox.put("a.log", "x\n")
    result = ingest(DELETE_AFTER_SYNC="true", POSTGRES_PORT=servers.free_port(), POSTGRES_PASSWORD="pg-s3cret")
    assert result.code == 3 and result.lines("cannot connect to PostgreSQL")
    assert inbox.files() == ["a.log"]
    assert "pg-s3cret" not in result.out and PASSWORD not in result.out


def test_file_deleted_after_the_listing_is_counted_as_gone_not_failed(inbox, ingest, pg_db, ftp_server):
    inbox.put("a.log", "lost\n")
    inbox.put("b.log", "kept\n")
    ftp_server.hooks["RETR"] = lambda path: path.endswith("a.log") and os.remove(path)  # gone when fetched
    result = ingest(DELETE_AFTER_SYNC="true")
    assert result.code == 0, result.out
    assert result.lines("/a.log: gone from the server since the listing (deleted or moved); nothing to load")
    assert result.lines("files: 2 seen, 1 loaded, 0 unchanged, 0 too young, 1 gone, 1 deleted or archived, 0 failed")
    assert not result.lines("ERROR") and not result.lines("next run tries again")
    assert ledger(pg_db, "/a.log") is None and [r["message"] for r in logs(pg_db)] == ["kept"]
    assert pg_db.value("SELECT status FROM datasync.runs") == "ok"


def test_sftp_file_deleted_after_the_listing_is_gone(inbox, pg_db):
    server = SftpServer(inbox.root, openssh_key("ed25519")[1])
    try:
        inbox.put("a.log", "lost\n")
        server.hooks["open"] = lambda path: path.endswith("a.log") and os.remove(path)
        result = run_service("ftp_log_service.py", ftp_base_env(pg_db, server, FTP_PROTOCOL="sftp",
                                                                SFTP_INSECURE_ACCEPT_ANY_HOST_KEY="true"))
    finally:
        server.stop()
    assert result.code == 0, result.out
    assert result.lines("/a.log: gone from the server since the listing") and result.lines("1 gone")


def append_once(path, text):
    """A hook for the test server: append ``text`` to the file at ``path`` the first time it runs."""
    done = []

    def hook(real_path):
        if not done and real_path == str(path):
            done.append(True)
            with open(real_path, "a") as handle:
                handle.write(text)
    return hook


@pytest.mark.parametrize("server_kind, archive", [("ftp", False), ("ftp", True), ("ftp without MLST", False),
                                                  ("sftp", False), ("sftp", True)])
def test_line_appended_after_the_load_is_not_deleted_unloaded(inbox, pg_db, server_kind, archive):
    path = inbox.put("press01/a.log", "2024-03-01 08:00:00 INFO one\n2024-03-01 08:00:01 INFO two\n")
    if server_kind == "sftp":
        server, extra = SftpServer(inbox.root, openssh_key("ed25519")[1]), dict(
            FTP_PROTOCOL="sftp", SFTP_INSECURE_ACCEPT_ANY_HOST_KEY="true")
    else:
        server, extra = FtpServer(inbox.root, mlsd=server_kind == "ftp"), {}
    env = ftp_base_env(pg_db, server, DELETE_AFTER_SYNC="true", **extra,
                       **({"FTP_ARCHIVE_DIR": "/archive"} if archive else {}))
    # the machine writes a line once the whole file was sent: after the listing and the load, before the delete
    server.hooks["sent"] = append_once(path, "2024-03-01 08:00:02 INFO three\n")
    try:
        first = run_service("ftp_log_service.py", env)
        assert first.code == 0, first.out
        assert first.lines("/press01/a.log: new, version 1, lines 1-2: 2 loaded")
        assert first.lines("/press01/a.log: changed since it was loaded (58 bytes")
        assert first.lines("not removed, the next run loads the rest") and first.lines("0 deleted or archived")
        assert inbox.files() == ["press01/a.log"]
        inbox.age("press01/a.log", 3600)
        second = run_service("ftp_log_service.py", env)
    finally:
        server.stop()
    assert second.code == 0, second.out
    assert second.lines("/press01/a.log: resumed, version 1, lines 3-3: 1 loaded")
    assert [r["message"] for r in logs(pg_db)] == ["one", "two", "three"]
    assert inbox.files() == (["archive/press01/a.log"] if archive else [])


def copying_backend(pg_db, other_than=None):
    """The pid of the service's session while it COPYs (not ``other_than``), or None."""
    found = pg_db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                        "application_name = 'datasync ftp_log' AND "
                        "state = 'active' AND query LIKE 'COPY%%' AND pid <> %s", (other_than or 0,))
    return found[0][0] if found else None


def terminate_copy(pg_db, other_than=None):
    """Wait until the service COPYs (in a session other than ``other_than``), kill that session; its pid."""
    wait_for(lambda: copying_backend(pg_db, other_than), what="the COPY")
    pid = copying_backend(pg_db, other_than)
    pg_db.query("SELECT pg_terminate_backend(%s)", (pid,))
    return pid


def test_postgres_connection_lost_mid_copy_is_retried_once(inbox, pg_db, ftp_server):
    big_log(inbox, "a.log", 400_000)
    inbox.put("b.log", "x\n")
    proc = start(ftp_base_env(pg_db, ftp_server, DELETE_AFTER_SYNC="true"))
    terminate_copy(pg_db)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert [line for line in out.splitlines() if "reconnecting and trying again" in line][0].split(" WARNING ")[1] \
        .startswith("datasync: /a.log: PostgreSQL connection lost: ")
    assert "/a.log: new, version 1, lines 1-400000: 400000 loaded" in out
    assert pg_db.query("SELECT count(*), count(DISTINCT line_no) FROM machine_logs WHERE source_file = '/a.log'")[0] \
        == (400_000, 400_000)
    assert len(logs(pg_db, "source_file = '/b.log'")) == 1 and inbox.files() == []


def test_postgres_connection_lost_twice_stops_the_run(inbox, pg_db, ftp_server):
    big_log(inbox, "a.log", 400_000)
    inbox.put("b.log", "x\n")
    proc = start(ftp_base_env(pg_db, ftp_server, DELETE_AFTER_SYNC="true"))
    terminate_copy(pg_db, other_than=terminate_copy(pg_db))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    assert "/a.log: PostgreSQL connection lost: " in out and "(twice); the next run tries again" in out
    assert inbox.files() == ["a.log", "b.log"] and not logs(pg_db) and ledger(pg_db, "/a.log") is None
    assert pg_db.value("SELECT status FROM datasync.runs ORDER BY id DESC LIMIT 1") == "unreachable"


def test_copy_waiting_past_lock_timeout_fails_that_file_alone(inbox, ingest, pg_db):
    assert ingest().code == 0  # the tables exist
    inbox.put("a.log", "one\n")
    inbox.put("b.log", "two\n")
    holder = hold(pg_db, "LOCK TABLE machine_logs IN SHARE MODE")
    try:
        blocked = ingest(LOCK_TIMEOUT="1", DELETE_AFTER_SYNC="true")
    finally:
        holder.close()
    assert blocked.code == 1, blocked.out
    for path in ("/a.log", "/b.log"):
        assert blocked.lines(f"{path}: waited LOCK_TIMEOUT for a PostgreSQL lock (canceling statement due to lock "
                             "timeout); the next run tries again")
    assert blocked.lines("files: 2 seen, 0 loaded") and blocked.lines("2 failed")
    assert not logs(pg_db) and inbox.files() == ["a.log", "b.log"]
    again = ingest(DELETE_AFTER_SYNC="true")
    assert again.code == 0 and [r["message"] for r in logs(pg_db)] == ["one", "two"] and inbox.files() == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_killed_mid_copy_loses_and_duplicates_nothing(inbox, ingest, pg_db, ftp_server, sig):
    big_log(inbox, "a.log", 400_000)
    proc = start(ftp_base_env(pg_db, ftp_server, DELETE_AFTER_SYNC="true"))
    wait_for(copying(pg_db), what="the COPY")
    os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 143), out
    if sig != signal.SIGKILL:
        assert f"stopped by {sig.name}" in out
        assert pg_db.value("SELECT status FROM datasync.runs ORDER BY id DESC LIMIT 1") == "interrupted"
    assert pg_db.value("SELECT count(*) FROM machine_logs") == 0 and ledger(pg_db, "/a.log") is None
    assert inbox.files() == ["a.log"]
    again = ingest(DELETE_AFTER_SYNC="true")
    assert again.code == 0, again.out
    assert pg_db.query("SELECT count(*), count(DISTINCT line_no) FROM machine_logs")[0] == (400_000, 400_000)
    assert inbox.files() == []
