"""Find the test servers, or start throwaway ones from the installed binaries.

Addresses come from TEST_POSTGRES_HOST/PORT/USER and TEST_MYSQL_HOST/PORT/USER/PASSWORD,
defaulting to the loopback services.  When nothing answers there, a private PostgreSQL
(initdb + pg_ctl) or MariaDB (mariadb-install-db + mariadbd) is started in a temporary
directory on a free loopback port.  When that is impossible too, tests fail with a
message saying what to install: they never skip silently.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import psycopg2
import pymysql


@dataclass
class Server:
    host: str
    port: int
    user: str
    password: str = ""
    stop: object = None  # callable, for servers we started


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_reachable(server):
    try:
        psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname="postgres",
                         connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


def mysql_reachable(server):
    try:
        pymysql.connect(host=server.host, port=server.port, user=server.user, password=server.password,
                        connect_timeout=3).close()
        return True
    except pymysql.err.OperationalError:
        return False


def _as_postgres_user():
    """initdb and postgres refuse to run as root: run them as the 'postgres' account."""
    entry = pwd.getpwnam("postgres")

    def demote():
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote}, entry


def start_private_postgres():
    """A new PostgreSQL cluster on a free port; returns a Server with a stop()."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bindirs:
        raise RuntimeError("no PostgreSQL server found: install Debian's postgresql package "
                           "or set TEST_POSTGRES_HOST/PORT/USER")
    bindir = bindirs[-1]
    base = tempfile.mkdtemp(prefix="datasync-pg-")
    extra = {}
    if os.geteuid() == 0:
        extra, entry = _as_postgres_user()
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, port = os.path.join(base, "data"), free_port()
    subprocess.run([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "root", "--no-sync"],
                   check=True, capture_output=True, **extra)
    server = Server("127.0.0.1", port, "root")

    def ctl(*args):
        return subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "log"), *args],
                              check=False, capture_output=True, **extra)

    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} -c fsync=off"
    server.start = lambda: ctl("-o", options, "start")
    server.restart = lambda: ctl("-o", options, "-m", "fast", "restart")
    server.stop = lambda: (ctl("-m", "immediate", "stop"), shutil.rmtree(base, ignore_errors=True))
    server.start()
    return server


def start_private_mariadb():
    """A new MariaDB server on a free port, for machines without a running one."""
    daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    installer = shutil.which("mariadb-install-db")
    if not os.path.exists(daemon) or not installer:
        raise RuntimeError("no MariaDB server found: install Debian's mariadb-server package "
                           "or set TEST_MYSQL_HOST/PORT/USER/PASSWORD")
    base = tempfile.mkdtemp(prefix="datasync-my-")
    port = free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run([installer, f"--datadir={base}/data", "--auth-root-authentication-method=normal",
                    "--skip-test-db", *user], check=True, capture_output=True)
    proc = subprocess.Popen([daemon, "--no-defaults", f"--datadir={base}/data", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={base}/sock", *user],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server("127.0.0.1", port, "root")
    for _ in range(100):
        if mysql_reachable(server):
            break
        time.sleep(0.2)
    server.stop = lambda: (proc.kill(), proc.wait(), shutil.rmtree(base, ignore_errors=True))
    return server


def postgres_server():
    server = Server(os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1"),
                    int(os.environ.get("TEST_POSTGRES_PORT", "5432")),
                    os.environ.get("TEST_POSTGRES_USER", "root"))
    return server if pg_reachable(server) else start_private_postgres()


def mysql_server():
    server = Server(os.environ.get("TEST_MYSQL_HOST", "127.0.0.1"), int(os.environ.get("TEST_MYSQL_PORT", "3306")),
                    os.environ.get("TEST_MYSQL_USER", "root"), os.environ.get("TEST_MYSQL_PASSWORD", ""))
    return server if mysql_reachable(server) else start_private_mariadb()
