"""ftp_log_service.py against a real pyftpdlib server and PostgreSQL: formats, exactly once, growth, deletes."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest

from tests.conftest import ftp_base_env, run_service
from tests.helpers import ledger, logs, pick, rejects
from tests.remote_servers import PASSWORD, FtpServer

CSV = "timestamp;machine;level;message;value\n2024-03-01 08:00:00;press01;info;start;1,5\n" \
      "2024-03-01 08:00:01;press01;warn;\"pressure; high\";2\n"


def test_formats_machine_ids_timestamps_and_rejects(inbox, ingest, pg_db):
    inbox.put("press01/2024-03-01.csv", CSV)
    inbox.put("cnc_07.log", "2024-03-01T08:00:00+01:00 [ERROR] spindle stalled\n\nno timestamp here\n")
    inbox.put("gw.jsonl", '{"ts": "2024-03-01 08:00:00", "host": "plc9", "msg": "up", "temp": 21.5}\n'
              "not json\n[1, 2]\n")
    inbox.put("robot/arm.txt", "ARM|E42|gripper open\nbad line\n")
    inbox.put("notes.md", "ignored: does not match FTP_FILE_PATTERN\n")
    result = ingest(LOG_FORMATS="robot/*=regex", LOG_REGEX=r"(?P<machine>\w+)\|(?P<code>\w+)\|(?P<message>.*)",
                    LOG_TIMEZONE="Europe/Berlin")
    assert result.code == 0, result.out
    rows = {(r["source_file"], r["line_no"]): r for r in logs(pg_db)}
    columns = ("machine_id", "logged_at", "level", "message")
    assert pick(rows[("/press01/2024-03-01.csv", 2)], *columns) == ("press01", "2024-03-01 07:00:00+00", "INFO",
                                                                     "start")
    assert rows[("/press01/2024-03-01.csv", 3)]["message"] == "pressure; high"
    assert rows[("/press01/2024-03-01.csv", 3)]["fields"] == {
        "timestamp": "2024-03-01 08:00:01", "machine": "press01", "level": "warn", "message": "pressure; high",
        "value": "2"}
    assert pick(rows[("/cnc_07.log", 1)], *columns) == ("cnc", "2024-03-01 07:00:00+00", "ERROR", "spindle stalled")
    assert pick(rows[("/cnc_07.log", 3)], *columns) == ("cnc", None, None, "no timestamp here")  # logged_at NULL
    assert pick(rows[("/gw.jsonl", 1)], *columns, "fields") == (
        "plc9", "2024-03-01 07:00:00+00", None, "up",
        {"ts": "2024-03-01 08:00:00", "host": "plc9", "msg": "up", "temp": 21.5})
    assert rows[("/robot/arm.txt", 1)]["machine_id"] == "ARM" and rows[("/robot/arm.txt", 1)]["fields"]["code"] == "E42"
    assert {path for path, _ in rows} == {"/press01/2024-03-01.csv", "/cnc_07.log", "/gw.jsonl", "/robot/arm.txt"}
    assert [(r["source_file"], r["line_no"], r["reason"].split(":")[0]) for r in rejects(pg_db)] == [
        ("/gw.jsonl", 2, "JSON"), ("/gw.jsonl", 3, "JSON"), ("/robot/arm.txt", 2, "does not match LOG_REGEX")]
    for path, data_lines in (("/press01/2024-03-01.csv", 2), ("/cnc_07.log", 2), ("/gw.jsonl", 3),
                             ("/robot/arm.txt", 2)):
        state = ledger(pg_db, path)
        assert state["lines_loaded"] + state["lines_rejected"] == data_lines, path
    assert result.lines("files: 4 seen, 4 loaded") and result.lines("lines: 6 loaded, 3 rejected")
    again = ingest()
    assert again.code == 0 and again.lines("files: 4 seen, 0 loaded, 4 unchanged")
    assert len(logs(pg_db)) == 6  # exactly once


def test_growing_file_resumes_at_offset_and_waits_for_newline(inbox, ingest, pg_db):
    inbox.put("press01/today.csv", "ts,level,message\n2024-03-01 08:00:00,INFO,one\n2024-03-01 08:00:01,INFO,tw")
    assert ingest().code == 0
    assert [r["line_no"] for r in logs(pg_db)] == [2]
    state = ledger(pg_db, "/press01/today.csv")
    assert state["status"] == "partial"
    assert state["offset_loaded"] == len("ts,level,message\n2024-03-01 08:00:00,INFO,one\n")
    inbox.append("press01/today.csv", "o\n2024-03-01 08:00:02,INFO,three\n")
    result = ingest()
    fetched = len("2024-03-01 08:00:01,INFO,two\n2024-03-01 08:00:02,INFO,three\n")  # from the stored offset on
    assert result.code == 0
    assert result.lines(f"/press01/today.csv: resumed, version 1, lines 3-4: 2 loaded, 0 rejected, {fetched} bytes")
    assert [pick(r, "line_no", "message") for r in logs(pg_db)] == [(2, "one"), (3, "two"), (4, "three")]
    assert pick(ledger(pg_db, "/press01/today.csv"), "status", "offset_loaded") == (
        "loaded", (inbox.root / "press01/today.csv").stat().st_size)


def test_small_file_growing_over_several_runs_stays_one_version(inbox, ingest, pg_db):
    """A file shorter than the fingerprinted head grows over three runs: always resumed, every line once."""
    content = ""
    for part in ("2024-03-01 one\ntw", "o\nthree\nfo", "ur\n"):
        content += part
        inbox.put("small.log", content)
        result = ingest()
        assert result.code == 0 and not result.lines("treated as a new file"), result.out
    assert [pick(r, "file_version", "message") for r in logs(pg_db)] == [
        (1, "2024-03-01 one"), (1, "two"), (1, "three"), (1, "four")]


def test_server_without_rest_still_resumes_without_duplicates(inbox, pg_db):
    inbox.put("a.log", "one\ntw")
    server = FtpServer(inbox.root, rest=False)
    try:
        assert run_service("ftp_log_service.py", ftp_base_env(pg_db, server)).code == 0
        inbox.append("a.log", "o\nthree\n")
        result = run_service("ftp_log_service.py", ftp_base_env(pg_db, server))
    finally:
        server.stop()
    assert result.code == 0 and result.lines("server refuses REST")
    assert result.lines("/a.log: resumed, version 1, lines 2-3: 2 loaded, 0 rejected, 10 bytes")
    assert [pick(r, "line_no", "message") for r in logs(pg_db)] == [(1, "one"), (2, "two"), (3, "three")]


def test_rewritten_and_shrunk_files_become_new_versions(inbox, ingest, pg_db):
    inbox.put("a.log", "2024-03-01 08:00:00 INFO first\n2024-03-01 08:00:01 INFO second\n")
    inbox.put("b.log", "2024-03-01 08:00:00 INFO long line number one\n")
    assert ingest().code == 0
    inbox.put("a.log", "2024-03-02 09:00:00 INFO rotated\n2024-03-02 09:00:01 INFO more\n2024-03-02 09:00:02 INFO x\n")
    inbox.put("b.log", "2024-03-02 short\n")
    result = ingest()
    assert result.code == 0
    assert result.lines("/a.log its first bytes changed (rotated or rewritten): treated as a new file (version 2)")
    assert result.lines("/b.log shrank from 46 to 17 bytes: treated as a new file (version 2)")
    assert [pick(r, "file_version", "line_no", "message") for r in logs(pg_db, "source_file = '/a.log'")] == [
        (1, 1, "first"), (1, 2, "second"), (2, 1, "rotated"), (2, 2, "more"), (2, 3, "x")]


def test_young_files_wait(inbox, ingest, pg_db):
    inbox.put("old.log", "old\n")
    inbox.put("new.log", "new\n", age=5)
    result = ingest(DELETE_AFTER_SYNC="true")
    assert result.lines("0 too young") == [] and result.lines("1 too young")
    assert [r["source_file"] for r in logs(pg_db)] == ["/old.log"]
    assert inbox.files() == ["new.log"]


def test_delete_only_what_is_committed_and_complete(inbox, ingest, pg_db):
    inbox.put("done.log", "a\nb\n")
    inbox.put("partial.log", "a\nb")
    inbox.put("sub dir/ünïcode ..name.log", "x\n")
    result = ingest(DELETE_AFTER_SYNC="true")
    assert result.code == 0, result.out
    assert inbox.files() == ["partial.log"]
    assert ledger(pg_db, "/done.log")["status"] == "deleted" and ledger(pg_db, "/done.log")["deleted_at"]
    assert ledger(pg_db, "/sub dir/ünïcode ..name.log")["status"] == "deleted"
    assert ledger(pg_db, "/partial.log")["status"] == "partial"
    assert len(logs(pg_db)) == 4


def test_archive_keeps_the_folder_layout(inbox, ingest, pg_db):
    inbox.put("in/press01/a.log", "a\n")
    inbox.put("in/press01/a.csv", "h\n1\n")
    result = ingest(DELETE_AFTER_SYNC="true", FTP_REMOTE_DIR="/in", FTP_ARCHIVE_DIR="/archive")
    assert result.code == 0, result.out
    assert inbox.files() == ["archive/press01/a.csv", "archive/press01/a.log"]
    assert pick(ledger(pg_db, "/in/press01/a.log"), "status", "archived_to") == ("archived", "/archive/press01/a.log")
    inbox.put("in/press01/a.log", "b\n")  # the same name again: a new version, archived beside the first
    assert ingest(DELETE_AFTER_SYNC="true", FTP_REMOTE_DIR="/in", FTP_ARCHIVE_DIR="/archive").code == 0
    assert len([f for f in inbox.files() if f.startswith("archive/press01/a.log")]) == 2
    assert [pick(r, "file_version", "message") for r in logs(pg_db, "source_file = '/in/press01/a.log'")] == [
        (1, "a"), (2, "b")]


def test_failed_delete_is_retried_without_reloading(inbox, ingest, pg_db, ftp_server):
    inbox.put("a.log", "line\n")
    ftp_server.set_perm("elr")  # no delete permission
    first = ingest(DELETE_AFTER_SYNC="true")
    assert first.code == 1 and first.lines("/a.log: cannot delete")
    assert not [line for line in first.out.splitlines() if line.count("/a.log") > 1]  # the path once
    assert inbox.files() == ["a.log"] and ledger(pg_db, "/a.log")["status"] == "loaded"
    ftp_server.set_perm("elradfmwMT")
    second = ingest(DELETE_AFTER_SYNC="true")
    assert second.code == 0 and second.lines("/a.log: deleted") and second.lines("0 loaded, 1 unchanged")
    assert inbox.files() == [] and len(logs(pg_db)) == 1


def test_gzip_encodings_and_awkward_lines(inbox, ingest, pg_db):
    inbox.put("z.log.gz", gzip.compress(b"2024-03-01 08:00:00 INFO zipped\nlast line without newline"))
    inbox.put("broken.log.gz", gzip.compress(b"x\n" * 1000)[:-30])
    inbox.put("garbage.gz", b"this is not gzip at all\n")
    inbox.put("win.csv", "\ufeffts;message\r\n2024-03-01 08:00:00;Grüße\r\n".encode())
    inbox.put("cp.log", "caf\xe9 ok\n".encode("cp1252") + "café utf8\n".encode() + b"\x81\x8d bad\n")
    inbox.put("nul.log", b"ok\n\x00\x00\x00\n")
    inbox.put("empty.log", b"")
    inbox.put("huge.log", b"x" * (1 << 20) + b"\n")
    inbox.put("longer.log", b"y" * (2 << 20) + b"\nafter\n")
    result = ingest(LOG_MAX_LINE_BYTES=str(3 << 19))
    assert result.code == 1
    assert result.lines("/broken.log.gz: gzip data ends early") and result.lines("/garbage.gz: not a valid gzip")
    assert not [line for line in result.out.splitlines() if line.count("/garbage.gz") > 1]  # the path once
    assert ledger(pg_db, "/broken.log.gz") is None and not logs(pg_db, "source_file LIKE '%broken%'")
    messages = {(r["source_file"], r["line_no"]): r["message"] for r in logs(pg_db)}
    assert messages[("/z.log.gz", 1)] == "zipped" and messages[("/z.log.gz", 2)] == "last line without newline"
    assert messages[("/win.csv", 2)] == "Grüße"
    assert messages[("/cp.log", 1)] == "café ok" and messages[("/cp.log", 2)] == "café utf8"
    assert len(messages[("/huge.log", 1)]) == 1 << 20
    assert messages[("/longer.log", 2)] == "after"
    assert ("/nul.log", 2) not in messages and ledger(pg_db, "/empty.log")["status"] == "loaded"
    reasons = {(r["source_file"], r["line_no"]): r["reason"] for r in rejects(pg_db)}
    assert reasons[("/cp.log", 3)] == "bytes not valid in utf-8 or cp1252"
    assert reasons[("/nul.log", 2)].startswith("line contains NUL bytes")
    assert reasons[("/longer.log", 1)].startswith(f"line longer than {3 << 19} bytes")
    assert result.lines("/cp.log: 1 lines were not valid utf-8 and were read as cp1252")


def test_nlst_only_server_recursive_listing_active_mode(inbox, pg_db):
    inbox.put("plant/press01/a.log", "a\n")
    inbox.put("plant/b.log", "b\n")
    server = FtpServer(inbox.root, mlsd=False)
    try:
        result = run_service("ftp_log_service.py", ftp_base_env(pg_db, server, FTP_REMOTE_DIR="plant",
                                                                FTP_PASSIVE="false"))  # active mode too
    finally:
        server.stop()
    assert result.code == 0, result.out
    assert result.lines("does not support MLSD")
    assert [pick(r, "source_file", "machine_id") for r in logs(pg_db)] == [
        ("/plant/b.log", "b"), ("/plant/press01/a.log", "press01")]


def test_another_run_in_progress_exits_0(inbox, ingest, pg_db, ftp_server):
    from datasync.postgres import LOCK_NAMESPACE, lock_key

    inbox.put("a.log", "a\n")
    holder = pg_db.connect()
    holder.autocommit = True
    key = lock_key(f"ftp:ftp://plant@{ftp_server.host}:{ftp_server.port}/")
    holder.cursor().execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key))
    try:
        result = ingest()
    finally:
        holder.close()
    assert result.code == 0 and result.lines("another run is in progress")
    assert pg_db.value("SELECT to_regclass('machine_logs') IS NULL")


def test_dry_run_changes_nothing_and_status(inbox, ingest, pg_db):
    inbox.put("a.log", "a\n")
    inbox.put("young.log", "b\n", age=1)
    dry = ingest("--dry-run", DELETE_AFTER_SYNC="true")
    assert dry.code == 0 and "load new from byte 0, then delete" in dry.out and "wait: changed" in dry.out
    assert pg_db.value("SELECT count(*) FROM pg_namespace WHERE nspname = 'datasync'") == 0
    assert inbox.files() == ["a.log", "young.log"]
    assert ingest().code == 0
    status = ingest("--status")
    assert status.code == 0
    rows = [line.split() for line in status.out.splitlines() if line.startswith("/")]
    assert [row[:3] for row in rows] == [["/a.log", "1", "loaded"]]  # file, version, status
    assert rows[0][3:7] == ["2", "2", "1", "0"]  # bytes loaded, size, lines, rejected
    assert ingest("--help").out.count("--dry-run") >= 1


def test_empty_file_is_loaded_once_and_then_unchanged(inbox, ingest, pg_db):
    inbox.put("empty.log", b"")
    assert ingest().lines("files: 1 seen, 1 loaded, 0 unchanged")
    assert ledger(pg_db, "/empty.log")["status"] == "loaded"
    dry = ingest("--dry-run")
    assert [line.split()[-1] for line in dry.out.splitlines() if line.startswith("/empty.log")] == ["unchanged"]
    assert ingest().lines("files: 1 seen, 0 loaded, 1 unchanged")
    inbox.append("empty.log", "2024-03-01 08:00:00 INFO first line\n")
    grown = ingest()
    assert grown.lines("/empty.log: resumed, version 1, lines 1-1: 1 loaded")
    assert [pick(r, "line_no", "message") for r in logs(pg_db)] == [(1, "first line")]


def test_control_characters_in_names_are_escaped_in_logs_and_commands(inbox, ingest, pg_db):
    inbox.put("\x1b[31mred\x07.log", "2024-03-01 08:00:00 INFO coloured name\n")
    result = ingest()
    assert result.code == 0, result.out
    assert result.lines("/\\x1b[31mred\\x07.log: new, version 1, lines 1-1: 1 loaded")
    assert [r["source_file"] for r in logs(pg_db)] == ["/\x1b[31mred\x07.log"]  # stored as it is
    for command in ("--status", "--dry-run"):
        out = ingest(command).out
        assert "/\\x1b[31mred\\x07.log" in out and "\x1b" not in out and "\x07" not in out, command
    assert "\x1b" not in result.out and "\x07" not in result.out


def test_status_escapes_control_characters_in_errors(inbox, ingest, pg_db):
    inbox.put("a.log", "2024-03-01 08:00:00 INFO one\n")
    assert ingest().code == 0
    pg_db.query("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'refused %', NEW.message; END$$")
    pg_db.query("CREATE TRIGGER refuse BEFORE INSERT ON machine_logs FOR EACH ROW EXECUTE FUNCTION refuse()")
    inbox.append("a.log", "2024-03-01 08:00:01 INFO \x1b[31mred\x07\n")
    assert ingest().code == 1
    assert "\x1b[31mred\x07" in ledger(pg_db, "/a.log")["last_error"]  # stored as the server said it
    status = ingest("--status")
    assert status.code == 0 and "refused \\x1b[31mred\\x07" in status.out
    assert "\x1b" not in status.out and "\x07" not in status.out


def test_configuration_errors_exit_2(pg_db, ftp_server):
    env = ftp_base_env(pg_db, ftp_server, LOG_FORMAT="regex", LOG_ENCODING="utf-16", LOG_TIMEZONE="Mars/Base",
                       SFTP_HOST_KEY="md5:aa", FTP_PROTOCOL="gopher")
    result = run_service("ftp_log_service.py", env)
    assert result.code == 2
    for problem in ("FTP_PROTOCOL must be one of", "LOG_ENCODING must be an ASCII-compatible encoding",
                    "LOG_TIMEZONE is not a known time zone", "SFTP_HOST_KEY must be a SHA256",
                    "LOG_REGEX is required when LOG_FORMAT or LOG_FORMATS uses the regex format"):
        assert result.lines(f"configuration: {problem}"), problem
    assert PASSWORD not in result.out


def test_json_fields_keep_types_and_escapes(inbox, ingest, pg_db):
    record = {"time": 1709280000123, "level": "warn", "message": "tab\there \\ back", "nested": {"a": [1, None]},
              "machine": 7}
    inbox.put("x.jsonl", json.dumps(record) + "\n" + '{"message": "nul \\u0000"}\n')
    assert ingest().code == 0
    row = logs(pg_db)[0]
    assert pick(row, "machine_id", "logged_at", "level", "message", "fields") == (
        "7", "2024-03-01 08:00:00.123+00", "WARN", "tab\there \\ back", record)
    assert rejects(pg_db)[0]["reason"].startswith("JSON: contains \\u0000")


def test_values_postgresql_or_python_cannot_take_never_fail_or_stall_a_file(inbox, ingest, pg_db):
    inbox.put("sensor.jsonl", '{"ts": "2024-03-01T08:00:00Z", "temp": NaN}\n{"ts": 1e999, "msg": "huge"}\n'
              '{"ts": "2024-W10-5", "msg": "week date", "v": 0.1000000000000000055511151231257827}\n')
    inbox.put("ids.csv", "timestamp;message\n" + "9" * 400 + ";an id, not a time\n")
    result = ingest()
    assert result.code == 0, result.out
    assert [(r["line_no"], r["reason"]) for r in rejects(pg_db)] == [
        (1, "JSON: NaN is not a JSON number (PostgreSQL's jsonb cannot hold it)")]
    rows = {(r["source_file"], r["line_no"]): r for r in logs(pg_db)}
    assert pick(rows[("/sensor.jsonl", 2)], "logged_at", "message") == (None, "huge")
    assert pick(rows[("/sensor.jsonl", 3)], "logged_at", "message") == ("2024-03-08 00:00:00+00", "week date")
    assert pg_db.value("SELECT fields->>'v' FROM machine_logs WHERE line_no = 3") == \
        "0.1000000000000000055511151231257827"  # as written, not as a double
    assert pick(rows[("/ids.csv", 2)], "logged_at", "message") == (None, "an id, not a time")


@pytest.mark.parametrize("protocol", ["ftp", "ftps"])
def test_unreachable_server_exit_3_without_password(pg_db, protocol):
    env = ftp_base_env(pg_db, type("S", (), {"host": "127.0.0.1", "port": 1})(), FTP_PROTOCOL=protocol)
    result = run_service("ftp_log_service.py", env)
    assert result.code == 3 and result.lines("cannot connect to") and result.lines("after 2 attempt(s)")
    assert PASSWORD not in result.out


def test_least_privilege_is_enough_for_the_log_ingestion(inbox, ingest, pg_db):
    """The README's grants and nothing more: PUBLIC's database defaults revoked, CONNECT and TEMPORARY
    granted, the schemas created for the role."""
    role = f"ds_{uuid.uuid4().hex[:8]}"
    pg_db.query(f"REVOKE ALL ON DATABASE \"{pg_db.name}\" FROM PUBLIC; CREATE ROLE {role} LOGIN; "
                f"CREATE SCHEMA logs AUTHORIZATION {role}; CREATE SCHEMA datasync AUTHORIZATION {role}; "
                f"GRANT CONNECT, TEMPORARY ON DATABASE \"{pg_db.name}\" TO {role}")
    try:
        inbox.put("press01/a.log", "2024-03-01 08:00:00 INFO one\n")
        env = {"POSTGRES_USER": role, "FTP_TARGET_SCHEMA": "logs", "DELETE_AFTER_SYNC": "true"}
        assert ingest("--dry-run", **env).code == 0
        first = ingest(**env)
        assert first.code == 0, first.out
        assert pg_db.query("SELECT machine_id, message FROM logs.machine_logs") == [("press01", "one")]
        assert inbox.files() == []
        assert ingest("--status", **env).code == 0
    finally:
        pg_db.query(f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")
