"""Fixtures: one per real server, a throwaway database on each, and a way to run the services."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pymysql
import pytest

from tests import servers

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = servers.postgres_server()
    except servers.ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    if server.stop:
        server.stop()


@pytest.fixture(scope="session")
def mysql_servers():
    """mysql_servers(kind): each kind of MySQL server is found (or started) once per session, and a
    server this session started is stopped at its end. A server that cannot be had fails every test
    that needs it with the same message (it is tried once)."""
    found = {}

    def get(kind):
        if kind not in found:
            try:
                found[kind] = servers.mysql_server(kind)
            except servers.ServerUnavailable as exc:
                found[kind] = str(exc)
        if isinstance(found[kind], str):
            pytest.fail(found[kind], pytrace=False)
        return found[kind]

    yield get
    for server in found.values():
        if isinstance(server, servers.Server) and server.stop:
            server.stop()


@pytest.fixture(scope="session", params=servers.MYSQL_KINDS)
def mysql_server(request, mysql_servers):
    """Every test that uses MySQL runs on each server: [mariadb] and [mysql] (Oracle MySQL)."""
    return mysql_servers(request.param)


class PgDB:
    """A throwaway PostgreSQL database with small query helpers."""

    def __init__(self, server, name):
        self.server, self.name = server, name

    def connect(self):
        return psycopg2.connect(host=self.server.host, port=self.server.port, user=self.server.user, dbname=self.name)

    def query(self, statement, args=None):
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(statement, args)
            rows = cur.fetchall() if cur.description else None
        conn.close()
        return rows

    def value(self, statement, args=None):
        return self.query(statement, args)[0][0]


class MyDB:
    """A throwaway MySQL database (utf8mb4) with small query helpers."""

    def __init__(self, server, name):
        self.server, self.name = server, name

    def connect(self, **kw):
        options = {"charset": "utf8mb4", "autocommit": True, **kw}
        return pymysql.connect(host=self.server.host, port=self.server.port, user=self.server.user,
                               password=self.server.password, database=self.name, **options)

    def run(self, *statements, args=None):
        conn = self.connect()
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement, args)
        conn.close()

    def many(self, statement, rows):
        conn = self.connect()
        with conn.cursor() as cur:
            cur.executemany(statement, rows)
        conn.close()

    def value(self, statement, args=None):
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(statement, args)
            row = cur.fetchone()
        conn.close()
        return row[0]

    def is_oracle_mysql8(self):
        """Oracle MySQL 8.0 or later (not MariaDB, not 5.7): geographic SRSs have their own axis order there."""
        version = self.value("SELECT VERSION()")
        return "mariadb" not in version.lower() and int(version.split(".")[0]) >= 8


def unique_name(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_db(pg_server):
    name = unique_name("dstest")
    admin = psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.user, dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield PgDB(pg_server, name)
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def mysql_db(mysql_server):
    name = unique_name("dstest")
    admin = pymysql.connect(host=mysql_server.host, port=mysql_server.port, user=mysql_server.user,
                            password=mysql_server.password, autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield MyDB(mysql_server, name)
    admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@dataclass
class Result:
    code: int
    out: str
    args: list = field(default_factory=list)

    def lines(self, needle):
        return [line for line in self.out.splitlines() if needle in line]


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYSQL_", "POSTGRES_", "FTP_", "SFTP_", "LOG_"))}
    env.update({"PYTHONPATH": str(ROOT), "CONNECT_RETRIES": "2", "CONNECT_RETRY_DELAY": "0.2",
                "DATASYNC_ENV_FILE": "/nonexistent/.env"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_service(script, env, *args, timeout=300):
    """Run a service as cron would: a subprocess; returns exit code and combined output."""
    proc = subprocess.run([sys.executable, str(ROOT / script), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT))
    return Result(proc.returncode, proc.stdout + proc.stderr, list(args))


@pytest.fixture
def sync_env(pg_db, mysql_db):
    """Environment for mysql_sync_service.py pointing at the two throwaway databases."""
    return base_env(MYSQL_HOST=mysql_db.server.host, MYSQL_PORT=mysql_db.server.port,
                    MYSQL_USER=mysql_db.server.user, MYSQL_PASSWORD=mysql_db.server.password,
                    MYSQL_DB=mysql_db.name, POSTGRES_HOST=pg_db.server.host, POSTGRES_PORT=pg_db.server.port,
                    POSTGRES_USER=pg_db.server.user, POSTGRES_DB=pg_db.name, MYSQL_TARGET_SCHEMA="src")


@pytest.fixture
def sync(sync_env):
    """sync(*args, **env_overrides) runs mysql_sync_service.py against the throwaway databases."""
    def run(*args, **overrides):
        return run_service("mysql_sync_service.py", {**sync_env, **{k: str(v) for k, v in overrides.items()}}, *args)
    return run


# ---------------------------------------------------------------- FTP / FTPS / SFTP


class Inbox:
    """The folder a test FTP/SFTP server serves: put files with a chosen age, look at what is left."""

    def __init__(self, root):
        self.root = root

    def put(self, relative, content, age=3600):
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        self.age(relative, age)
        return path

    def append(self, relative, content, age=3600):
        path = self.root / relative
        with path.open("ab") as handle:
            handle.write(content.encode() if isinstance(content, str) else content)
        self.age(relative, age)

    def age(self, relative, seconds):
        stamp = time.time() - seconds
        os.utime(self.root / relative, (stamp, stamp))

    def files(self):
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())


@pytest.fixture
def inbox(tmp_path):
    root = tmp_path / "inbox"
    root.mkdir()
    return Inbox(root)


@pytest.fixture
def ftp_server(inbox):
    from tests.remote_servers import FtpServer

    server = FtpServer(inbox.root)
    yield server
    server.stop()


def ftp_base_env(pg_db, server, **extra):
    from tests.remote_servers import PASSWORD, USER

    return base_env(**{"FTP_HOST": server.host, "FTP_PORT": server.port, "FTP_USER": USER, "FTP_PASS": PASSWORD,
                       "POSTGRES_HOST": pg_db.server.host, "POSTGRES_PORT": pg_db.server.port,
                       "POSTGRES_USER": pg_db.server.user, "POSTGRES_DB": pg_db.name, **extra})


@pytest.fixture
def ingest(pg_db, ftp_server):
    """ingest(*args, **env_overrides) runs ftp_log_service.py against the test FTP server and database."""
    def run(*args, **overrides):
        return run_service("ftp_log_service.py", ftp_base_env(pg_db, ftp_server, **overrides), *args)
    return run


@pytest.fixture
def in_process(monkeypatch):
    """Run a service in this process (so that monkeypatch can change its code); the signal handling it
    installs is put back afterwards."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield monkeypatch
    for number, handler in saved.items():
        signal.signal(number, handler)
    signal.set_wakeup_fd(-1)
