"""FTPS (certificate checks) and SFTP (password and keys, host-key verification) against real servers."""

from __future__ import annotations

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
    assert refused.code == 3 and refused.lines("server certificate not trusted")
    assert PASSWORD not in refused.out and not refused.lines("attempt 1 of")  # no pointless retries
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
    assert unknown.code == 3
    assert unknown.lines(f"host key ssh-ed25519 {fingerprint_of(host_key)} of [127.0.0.1]:{server.port} is not in "
                         "SFTP_KNOWN_HOSTS")
    other = openssh_key("ed25519")[1]
    wrong = run(pg_db, server, **sftp_env(SFTP_HOST_KEY=fingerprint_of(other)))
    assert wrong.code == 3 and wrong.lines("does not match SFTP_HOST_KEY")
    assert not logs_exist(pg_db)
    insecure = run(pg_db, server, **sftp_env(SFTP_INSECURE_ACCEPT_ANY_HOST_KEY="true"))
    assert insecure.code == 0 and insecure.lines("WARNING") and insecure.lines("accepting host key")
    assert PASSWORD not in unknown.out + wrong.out + insecure.out


def logs_exist(pg_db):
    return pg_db.value("SELECT to_regclass('machine_logs') IS NOT NULL")


def test_sftp_wrong_password_exit_3(inbox, pg_db, sftp_factory, host_key):
    from datasync.ftp.remote import fingerprint_of

    server = sftp_factory()
    result = run(pg_db, server, **sftp_env(FTP_PASS="nope", SFTP_HOST_KEY=fingerprint_of(host_key)))
    assert result.code == 3 and result.lines("refused the login")
