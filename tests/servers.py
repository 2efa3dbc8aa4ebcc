"""Find the test servers, or start throwaway ones from the installed binaries.

Addresses come from TEST_POSTGRES_HOST/PORT/USER, TEST_MYSQL_HOST/PORT/USER/PASSWORD (MariaDB) and
TEST_ORACLE_MYSQL_HOST/PORT/USER/PASSWORD (Oracle MySQL), defaulting to the loopback services.
When nothing listens there, a private PostgreSQL (initdb + pg_ctl) or MariaDB (mariadb-install-db +
mariadbd) is started in a temporary directory on a free loopback port, and Oracle MySQL is started
from its cached chroot by tests/oracle-mysql.sh.  A server that is there but refuses the login is
an error, with the server's message.  When a server can be neither reached nor started, tests fail
with a message saying what to run or install: they never skip, and never use another server instead.
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
from pathlib import Path

import psycopg2
import pymysql


@dataclass
class Server:
    host: str
    port: int
    user: str
    password: str = ""
    stop: object = None  # callable, for servers we started
    kind: str = ""       # "postgres", "mariadb" or "mysql"


class ServerUnavailable(RuntimeError):
    """A test server that can be neither used nor started; the message says what to do."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(host, port, what, variables):
    """True when something accepts connections there, False when nothing listens (connection refused).

    Anything else (no such host, a timeout) is not "no server": it raises, so a mistyped address is
    reported instead of quietly replaced by a private server.
    """
    try:
        socket.create_connection((host, port), timeout=5).close()
        return True
    except ConnectionRefusedError:
        return False
    except OSError as exc:
        raise ServerUnavailable(f"{what} at {host}:{port}: {exc} (set {variables})") from None


def pg_login(server, variables):
    try:
        psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname="postgres",
                         connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        raise ServerUnavailable(f"PostgreSQL at {server.host}:{server.port} refused the test login as "
                                f"{server.user!r}: {str(exc).strip()} (set {variables})") from None


def mysql_login(server, what, variables):
    """Log in once; a refused login (wrong password, unknown user, ...) raises with the server's message."""
    try:
        conn = pymysql.connect(host=server.host, port=server.port, user=server.user, password=server.password,
                               connect_timeout=5)
    except pymysql.err.MySQLError as exc:
        message = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise ServerUnavailable(f"{what} at {server.host}:{server.port} refused the test login as "
                                f"{server.user!r}: {message} (set {variables})") from None
    try:
        return conn.get_server_info()
    finally:
        conn.close()


def _mysql_answers(server):
    """For a server we are starting: True once it accepts the login."""
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
        raise ServerUnavailable("no PostgreSQL server found: install Debian's postgresql package "
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
        raise ServerUnavailable("no MariaDB server found: install Debian's mariadb-server package "
                                f"or set {MARIADB_VARIABLES}")
    base = tempfile.mkdtemp(prefix="datasync-my-")
    port = free_port()
    user = ["--user=root"] if os.geteuid() == 0 else []
    # --no-defaults: the system's my.cnf would make it run as 'mysql', who cannot write the temporary folder
    installed = subprocess.run([installer, "--no-defaults", f"--datadir={base}/data",
                                "--auth-root-authentication-method=normal", "--skip-test-db", *user],
                               capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"a private MariaDB could not be set up ({installer} failed): "
                                f"{(installed.stdout + installed.stderr).strip()[-2000:]}")
    proc = subprocess.Popen([daemon, "--no-defaults", f"--datadir={base}/data", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={base}/sock", *user],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server("127.0.0.1", port, "root", kind="mariadb")
    for _ in range(100):
        if _mysql_answers(server):
            break
        time.sleep(0.2)
    server.stop = lambda: (proc.kill(), proc.wait(), shutil.rmtree(base, ignore_errors=True))
    return server


def postgres_server():
    server = Server(os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1"),
                    int(os.environ.get("TEST_POSTGRES_PORT", "5432")),
                    os.environ.get("TEST_POSTGRES_USER", "root"), kind="postgres")
    if not listening(server.host, server.port, "PostgreSQL", "TEST_POSTGRES_HOST/PORT/USER"):
        return start_private_postgres()
    pg_login(server, "TEST_POSTGRES_HOST/PORT/USER")
    return server


MARIADB_VARIABLES = "TEST_MYSQL_HOST/PORT/USER/PASSWORD"
ORACLE_VARIABLES = "TEST_ORACLE_MYSQL_HOST/PORT/USER/PASSWORD"
ORACLE_SCRIPT = Path(__file__).resolve().with_name("oracle-mysql.sh")
ORACLE_CHROOT = Path(os.environ.get("DATASYNC_MYSQL_CHROOT", "/var/cache/datasync-test/mysql-sid"))


def mariadb_server():
    server = Server(os.environ.get("TEST_MYSQL_HOST", "127.0.0.1"), int(os.environ.get("TEST_MYSQL_PORT", "3306")),
                    os.environ.get("TEST_MYSQL_USER", "root"), os.environ.get("TEST_MYSQL_PASSWORD", ""),
                    kind="mariadb")
    if not listening(server.host, server.port, "MariaDB", MARIADB_VARIABLES):
        return start_private_mariadb()
    mysql_login(server, "MariaDB", MARIADB_VARIABLES)
    return server


def oracle_mysql_server():
    """Oracle MySQL (8.0 or later): the chroot server of tests/oracle-mysql.sh, started here when it is
    built but not running (and then stopped by server.stop). Never a MariaDB instead."""
    server = Server(os.environ.get("TEST_ORACLE_MYSQL_HOST", "127.0.0.1"),
                    int(os.environ.get("TEST_ORACLE_MYSQL_PORT", "3307")),
                    os.environ.get("TEST_ORACLE_MYSQL_USER", "root"),
                    os.environ.get("TEST_ORACLE_MYSQL_PASSWORD", "datasync-test"), kind="mysql")
    where = f"{server.host}:{server.port}"
    if not listening(server.host, server.port, "Oracle MySQL", ORACLE_VARIABLES):
        how = (f"start it as root with `bash tests/oracle-mysql.sh start` (`make servers` does; it builds the "
               f"Debian sid chroot with mysql-server once, which needs Debian's debootstrap: apt-get install "
               f"debootstrap), or set {ORACLE_VARIABLES} to a MySQL 8.0+ server")
        if server.host not in ("127.0.0.1", "localhost"):
            raise ServerUnavailable(f"Oracle MySQL: nothing listens at {where}; {how}")
        if os.geteuid() != 0 or not (ORACLE_CHROOT / "usr/sbin/mysqld").exists():
            problem = "not root" if os.geteuid() != 0 else f"{ORACLE_CHROOT} is not built"
            raise ServerUnavailable(f"Oracle MySQL: nothing listens at {where} and it cannot be started here "
                                    f"({problem}); {how}")
        try:
            started = subprocess.run(["bash", str(ORACLE_SCRIPT), "start"], capture_output=True, text=True,
                                     timeout=240, check=False)
            failure = "" if started.returncode == 0 else (started.stdout + started.stderr).strip()
        except subprocess.TimeoutExpired:
            failure = "it did not finish within 240 s"
        if failure:
            raise ServerUnavailable(f"Oracle MySQL: nothing listens at {where} and `bash tests/oracle-mysql.sh "
                                    f"start` failed: {failure}; {how}")
        server.stop = lambda: subprocess.run(["bash", str(ORACLE_SCRIPT), "stop"], capture_output=True,
                                             timeout=120, check=False)
    version = mysql_login(server, "Oracle MySQL", ORACLE_VARIABLES)
    major = version.split(".")[0]
    if "mariadb" in version.lower() or not major.isdigit() or int(major) < 8:
        raise ServerUnavailable(f"Oracle MySQL at {where} is {version}, not Oracle MySQL 8.0 or later: "
                                f"set {ORACLE_VARIABLES} to one")
    return server


MYSQL_KINDS = ("mariadb", "mysql")


def mysql_server(kind="mariadb"):
    """The MySQL-protocol test server of that kind: "mariadb" (the default) or "mysql" (Oracle MySQL)."""
    return {"mariadb": mariadb_server, "mysql": oracle_mysql_server}[kind]()
