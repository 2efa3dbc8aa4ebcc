"""FTPS (certificate checks) and SFTP (password and keys, host-key verification) against real servers."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ftp_base_env, run_service
from tests.helpers import ledger, logs, pick
from tests.remote_servers import PASSWORD, FtpServer, SftpServer, openssh_key, write_certificate


@pytest.fixture
def ftps_server(inbox, tmp_path):
    cert = write_certificate(tmp_path)
    server = FtpServer(inbox.root, tls=True, cert=cert)
    server.ca_file = str(cert[0])
    yield server
    server.stop()


def run(pg_db, server, **env):
    return run_service("ftp_log_service.py", ftp_base_env(pg_db, server, **env))


def test_ftps_verified_by_ca_file(inbox, pg_db, ftps_server):
    inbox.put("press01/a.log", "2024-03-01 08:00:00 INFO over tls\n")
    result = run(pg_db, ftps_server, FTP_PROTOCOL="ftps", FTPS_CA_FILE=ftps_server.ca_file, DELETE_AFTER_SYNC="true")
    assert result.code == 0, result.out
    assert [r["message"] for r in logs(pg_db)] == ["over tls"] and inbox.files() == []


def test_ftps_untrusted_certificate_refused_then_explicit_opt_out(inbox, pg_db, ftps_server):
    inbox.put("a.log", "x\n")
    refused = run(pg_db, ftps_server, FTP_PROTOCOL="ftps")
    assert refused.code == 2 and refused.lines("configuration: FTPS server") and refused.lines("not trusted")
    assert refused_once(refused)
    insecure = run(pg_db, ftps_server, FTP_PROTOCOL="ftps", FTPS_VERIFY="false")
    assert insecure.code == 0 and insecure.lines("WARNING") and insecure.lines("FTPS_VERIFY=false")
    assert len(logs(pg_db)) == 1


@pytest.fixture
def host_key():
    return openssh_key("ed25519")[1]


@pytest.fixture
def sftp_factory(inbox, host_key):
    servers = []

    def make(client_keys=()):
        servers.append(SftpServer(inbox.root, host_key, client_keys))
        return servers[-1]
    yield make
    for server in servers:
        server.stop()


def sftp_env(**extra):
    return dict(FTP_PROTOCOL="sftp", **extra)


def test_sftp_password_known_hosts_resume_and_delete(inbox, pg_db, sftp_factory, host_key, tmp_path):
    server = sftp_factory()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {host_key.get_name()} {host_key.get_base64()}\n")
    inbox.put("line7/today.log", "2024-03-01 08:00:00 INFO one\n2024-03-01 08:00:01 INFO tw")
    first = run(pg_db, server, **sftp_env(SFTP_KNOWN_HOSTS=str(known), DELETE_AFTER_SYNC="true"))
    assert first.code == 0, first.out
    assert inbox.files() == ["line7/today.log"]  # its last line is not complete: kept
    inbox.append("line7/today.log", "o\n")
    second = run(pg_db, server, **sftp_env(SFTP_KNOWN_HOSTS=str(known), DELETE_AFTER_SYNC="true"))
    fetched = len("2024-03-01 08:00:01 INFO two\n")
    assert second.code == 0 and second.lines(f"resumed, version 1, lines 2-2: 1 loaded, 0 rejected, {fetched} bytes")
    assert [pick(r, "line_no", "machine_id", "message") for r in logs(pg_db)] == [
        (1, "line7", "one"), (2, "line7", "two")]
    assert inbox.files() == [] and ledger(pg_db, "/line7/today.log")["status"] == "deleted"


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_sftp_private_keys_with_pinned_host_key(inbox, pg_db, sftp_factory, host_key, kind, tmp_path):
    from datasync.ftp.remote import fingerprint_of

    text, key = openssh_key(kind, passphrase="k3y pass" if kind == "ecdsa" else None)
    server = sftp_factory([key])
    key_file = tmp_path / "id"
    key_file.write_text(text)
    inbox.put("a.log", "x\n")
    env = sftp_env(FTP_PASS="", SFTP_PRIVATE_KEY_FILE=str(key_file), SFTP_HOST_KEY=fingerprint_of(host_key))
    if kind == "ecdsa":
        env["SFTP_PRIVATE_KEY_PASSPHRASE"] = "k3y pass"
    result = run(pg_db, server, **env)
    assert result.code == 0, result.out
    assert len(logs(pg_db)) == 1


def test_sftp_unknown_or_wrong_host_key_refused(inbox, pg_db, sftp_factory, host_key):
    from datasync.ftp.remote import fingerprint_of

    server = sftp_factory()
    inbox.put("a.log", "x\n")
    unknown = run(pg_db, server, **sftp_env())
    assert unknown.code == 2 and refused_once(unknown)
    assert unknown.lines(f"host key ssh-ed25519 {fingerprint_of(host_key)} of [127.0.0.1]:{server.port} is not in "
                         "SFTP_KNOWN_HOSTS")
    other = openssh_key("ed25519")[1]
    wrong = run(pg_db, server, **sftp_env(SFTP_HOST_KEY=fingerprint_of(other)))
    assert wrong.code == 2 and refused_once(wrong) and wrong.lines("does not match SFTP_HOST_KEY")
    assert not logs_exist(pg_db)
    insecure = run(pg_db, server, **sftp_env(SFTP_INSECURE_ACCEPT_ANY_HOST_KEY="true"))
    assert insecure.code == 0 and insecure.lines("WARNING") and insecure.lines("accepting host key")
    assert PASSWORD not in unknown.out + wrong.out + insecure.out


def test_sftp_changed_host_key_shows_both_fingerprints(inbox, pg_db, sftp_factory, host_key, tmp_path):
    from datasync.ftp.remote import fingerprint_of

    server = sftp_factory()
    inbox.put("a.log", "x\n")
    old = openssh_key("ed25519")[1]  # what known_hosts remembers for the server
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {old.get_name()} {old.get_base64()}\n")
    result = run(pg_db, server, **sftp_env(SFTP_KNOWN_HOSTS=str(known)))
    assert result.code == 2 and refused_once(result)
    assert result.lines(f"its host key changed: it shows ssh-ed25519 {fingerprint_of(host_key)}, SFTP_KNOWN_HOSTS "
                        f"has ssh-ed25519 {fingerprint_of(old)} (if the server's key was replaced")
    assert host_key.get_base64() not in result.out and old.get_base64() not in result.out
    assert not logs_exist(pg_db) and inbox.files() == ["a.log"]


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def test_sftp_name_with_line_break_cannot_forge_a_log_line(inbox, pg_db, sftp_factory, host_key):
    from datasync.ftp.remote import fingerprint_of

    server = sftp_factory()
    forged = "2024-03-01 08:00:00,000 ERROR datasync: forged"
    inbox.put(f"evil\n{forged}.log", "x\n")
    inbox.put("good.log", "y\n")
    env = sftp_env(SFTP_HOST_KEY=fingerprint_of(host_key))
    result = run(pg_db, server, **env)
    assert result.code == 1, result.out
    assert all(LOG_LINE.match(line) for line in result.out.splitlines()), result.out
    assert result.lines(f"/evil\\n{forged}.log: file name contains a line break or NUL; not loaded")
    assert [r["source_file"] for r in logs(pg_db)] == ["/good.log"]
    dry = run_service("ftp_log_service.py", ftp_base_env(pg_db, server, **env), "--dry-run")
    assert [line for line in dry.out.splitlines() if "forged" in line] == [
        line for line in dry.out.splitlines() if line.startswith("/evil\\n2024")]


def logs_exist(pg_db):
    return pg_db.value("SELECT to_regclass('machine_logs') IS NOT NULL")


def refused_once(result):
    """One configuration line, no retries, no password: what a refusal that retrying cannot fix looks like."""
    return (len(result.lines(" ERROR ")) == 1 and result.lines("ERROR datasync: configuration: ")
            and not result.lines("attempt 1 of") and PASSWORD not in result.out)


def test_ftp_refused_login_exit_2(inbox, pg_db, ftp_server):
    result = run(pg_db, ftp_server, FTP_PASS="nope")
    assert result.code == 2 and refused_once(result) and result.lines("refused the login: 530")


def test_sftp_refused_login_exit_2(inbox, pg_db, sftp_factory, host_key):
    from datasync.ftp.remote import fingerprint_of

    server = sftp_factory()
    result = run(pg_db, server, **sftp_env(FTP_PASS="nope", SFTP_HOST_KEY=fingerprint_of(host_key)))
    assert result.code == 2 and refused_once(result) and result.lines("refused the login")


@pytest.mark.parametrize("problem", ["not a key", "no passphrase", "wrong passphrase", "unreadable file"])
def test_sftp_key_problems_exit_2(inbox, pg_db, sftp_factory, host_key, tmp_path, problem):
    from datasync.ftp.remote import fingerprint_of

    text, key = openssh_key("ed25519", passphrase="right one")
    server = sftp_factory([key])
    key_file = tmp_path / "id"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n"
                        if problem == "not a key" else text)
    env = sftp_env(FTP_PASS="", SFTP_PRIVATE_KEY_FILE=str(key_file), SFTP_HOST_KEY=fingerprint_of(host_key))
    if problem == "wrong passphrase":
        env["SFTP_PRIVATE_KEY_PASSPHRASE"] = "wrong one"
    if problem == "unreadable file":
        env["SFTP_PRIVATE_KEY_FILE"] = str(tmp_path / "missing")
    result = run(pg_db, server, **env)
    expected = {"not a key": "SFTP_PRIVATE_KEY is not an Ed25519, ECDSA or RSA private key",
                "no passphrase": "SFTP_PRIVATE_KEY is encrypted: set SFTP_PRIVATE_KEY_PASSPHRASE",
                "wrong passphrase": "SFTP_PRIVATE_KEY_PASSPHRASE does not decrypt SFTP_PRIVATE_KEY",
                "unreadable file": "SFTP_PRIVATE_KEY_FILE cannot read"}[problem]
    assert result.code == 2 and refused_once(result) and result.lines(f"configuration: {expected}"), result.out
    assert "right one" not in result.out
