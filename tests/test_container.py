"""The container files: linted, and start.sh proven under the real cron.

The end-to-end test runs the real start.sh as root with the real Debian cron inside a private
mount namespace (``unshare -m``, tmpfs over /etc/cron.d and /run, /etc behind an overlay), so the
machine is untouched.
Jobs run as ``nobody`` with Debian's /usr/bin/python3 (root's pyenv Python is out of its reach),
through a wrapper that records the environment cron gave each job.
(start.sh's variable lists and cron quoting come from datasync/config/cron.py: tests/test_cron.py.)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datasync.config import VARIABLES, Reader
from datasync.config.cron import CONTAINER_VARIABLES
from tests.conftest import ROOT
from tests.helpers import wait_for
from tests.remote_servers import PASSWORD, FtpServer

BIN = Path(sys.executable).parent
START = ROOT / "start.sh"


def tool(name):
    return str(BIN / name) if (BIN / name).exists() else shutil.which(name)


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)


# ---------------------------------------------------------------- linters and consistency


def test_start_sh_is_shellcheck_clean():
    result = run(tool("shellcheck"), "--shell=sh", START)
    assert result.returncode == 0, result.stdout


def test_docker_test_scripts_are_shellcheck_clean():
    scripts = [ROOT / ".ci/run", ROOT / "tests/docker/standins.sh",
               *sorted((ROOT / "tests/docker").glob("*/docker-entrypoint.sh"))]
    result = run(tool("shellcheck"), *scripts)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "demo/ftp-server/Dockerfile", "tests/docker/python/Dockerfile",
                                        "tests/docker/postgres/Dockerfile", "tests/docker/mysql/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile):
    result = run(tool("hadolint"), ROOT / dockerfile)
    assert result.returncode == 0, result.stdout


def test_compose_file_matches_the_compose_specification():
    for compose in ("docker-compose.yaml", "tests/docker/compose.test.yaml"):
        result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", ROOT / compose)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not re.search(r"^version:", (ROOT / compose).read_text(), re.M)


def test_no_build_fetches_a_frontend_or_pins_an_expiring_package_version():
    for dockerfile in ("Dockerfile", "demo/ftp-server/Dockerfile"):
        text = (ROOT / dockerfile).read_text()
        assert "# syntax=" not in text, dockerfile  # BuildKit would fetch that frontend from Docker Hub
        assert not re.search(r"apt-get install[^&]*=", text), dockerfile  # Debian point releases drop versions
        assert "--only-binary" not in text or dockerfile == "Dockerfile", dockerfile  # pyftpdlib has no wheel


def test_datasync_gets_no_secret_it_does_not_read():
    # env_file: .env hands datasync every line of .env: .env.example holds only its settings
    text = (ROOT / ".env.example").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, re.M))
    assert assigned <= set(VARIABLES) | set(CONTAINER_VARIABLES), sorted(assigned - set(VARIABLES))
    assert "MYSQL_ROOT_PASSWORD:" not in (ROOT / "docker-compose.yaml").read_text()


def test_env_example_documents_every_variable():
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M))
    container = set(CONTAINER_VARIABLES) - {"JOB_USER"} - {v for v in CONTAINER_VARIABLES if v.startswith("DATASYNC_")}
    assert set(VARIABLES) | container <= documented, sorted(set(VARIABLES) | container - documented)


def test_gitattributes_keeps_scripts_lf():
    result = run("git", "-C", ROOT, "check-attr", "eol", "start.sh", "ftp_log_service.py")
    assert result.stdout.count("eol: lf") == 2


# ---------------------------------------------------------------- start.sh validation (no root needed)


def start_env(**extra):
    env = {"PATH": os.environ["PATH"], "JOB_USER": "nobody", "POSTGRES_HOST": "h", "POSTGRES_DB": "d",
           "POSTGRES_USER": "u", "MYSQL_HOST": "h", "MYSQL_DB": "d", "MYSQL_USER": "u", "FTP_HOST": "h",
           "FTP_USER": "u", "DATASYNC_CRON_DIR": "/nonexistent/cron.d", "DATASYNC_APP_DIR": str(ROOT),
           "DATASYNC_PYTHON": sys.executable}
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


@pytest.mark.parametrize("extra, message", [
    ({"FTP_HOST": None, "MYSQL_DB": None}, "ftp_log job: required variable(s) not set: FTP_HOST"),
    ({"MYSQL_DB": None}, "mysql_sync job: required variable(s) not set: MYSQL_DB"),
    ({"FTP_CRON_SCHEDULE": "*/5 * * *"}, "FTP_CRON_SCHEDULE='*/5 * * *' is not a cron pattern: it needs 5 fields"),
    ({"MYSQL_SYNC_CRON_SCHEDULE": "61 * * * *"}, "MYSQL_SYNC_CRON_SCHEDULE='61 * * * *' is not a valid cron pattern"),
    ({"FTP_CRON_SCHEDULE": "* * * * mon-fry"}, "is not a valid cron pattern"),
    ({"RUN_ON_START": "yes"}, "RUN_ON_START must be true or false"),
    ({"JOB_UID": "0"}, "JOB_UID must be a whole number other than 0 (jobs never run as root)"),
    ({"STOP_TIMEOUT": "soon"}, "STOP_TIMEOUT must be a whole number"),
    ({"POSTGRES_PASSWORD": "a", "POSTGRES_PASSWORD_FILE": "/b"},
     "set either POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both"),
    ({"JOB_USER": "no-such-user-here"}, "JOB_USER 'no-such-user-here' does not exist"),
])
def test_start_sh_rejects_bad_settings_with_exit_2(extra, message):
    result = run("sh", START, env=start_env(**extra))
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_start_sh_accepts_real_patterns_and_off():
    # valid settings get past validation and stop at the first write (the cron dir does not exist)
    for pattern in ("*/5 * * * *", "2,17,32,47 * * * *", "0 6-18/2 * * mon-fri", "@hourly", "off"):
        result = run("sh", START, env=start_env(FTP_CRON_SCHEDULE=pattern, DATASYNC_RUN_DIR="/proc/no/run",
                                                DATASYNC_LOG_DIR="/proc/no/logs"))
        assert "cron pattern" not in result.stderr, (pattern, result.stderr)


# ---------------------------------------------------------------- end to end under the real cron

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="start.sh runs cron as root (CI runs as root)")
# Values cron would change on a line (they travel as NAME_FILE) and values it carries as they are.
MYSQL_PW = '\'my "pass word" $HOME #x %y '  # starts with a quote, ends with a space; the login proves it
PG_PW = "'quoted'"                          # cron would strip a second pair of quotes (trust auth ignores it)
FTP_LOG_VALUES = {
    "POSTGRES_PASSWORD": PG_PW,
    "SFTP_PRIVATE_KEY_PASSPHRASE": ' "dq" spaced ',      # leading and trailing blanks (unused by FTP)
    "SFTP_PRIVATE_KEY": "line 1\nline 2 \\ %\n",        # line breaks, a trailing one (unused by FTP)
    "LOG_REGEX": "(?P<level>\\w+) '\\$x' \"#%\" (?P<message>.*)",  # both quotes, $, #, %, backslashes
    "LOG_TIMEZONE": "Europe/Berlin",                     # plain: on the cron line
    "FTP_ARCHIVE_DIR": "",                               # empty
}
MYSQL_SYNC_VALUES = {
    "POSTGRES_PASSWORD": PG_PW,
    "MYSQL_PASSWORD": MYSQL_PW,
    "MYSQL_EXCLUDE_TABLES": "no_such_table_" + "x" * 1200,  # longer than cron keeps of a line
    "MYSQL_SKIP_DELETES": "50%_off,$x,#y,back\\slash",     # %, $, # and a backslash: on the line
}


@pytest.fixture(scope="session")
def job_python(tmp_path_factory):
    """A venv of Debian's /usr/bin/python3 that the unprivileged job user can run (kept between sessions)."""
    digest = hashlib.sha1((ROOT / "requirements.txt").read_bytes()).hexdigest()[:10]
    venv = Path(f"/tmp/datasync-jobvenv-{digest}")
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-r",
                        str(ROOT / "requirements.txt")], check=True, timeout=600)
        (venv / ".ready").touch()
    return python


@pytest.fixture
def app(tmp_path, job_python):
    """A copy of the application where ``nobody`` can read it, plus log and run folders, the FTP
    password as a file, and a python wrapper that records each job's environment in dump/JOB.json."""
    base = Path(f"/tmp/datasync-e2e-{os.getpid()}-{time.monotonic_ns()}")
    (base / "app").mkdir(parents=True)
    for item in ("datasync", "ftp_log_service.py", "mysql_sync_service.py", "start.sh"):
        source = ROOT / item
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, base / "app" / item)
    for folder in ("logs", "run", "dump"):
        (base / folder).mkdir()
    (base / "ftp_pass").write_text(PASSWORD + "\n")
    dump = ("import json, os, sys; p = sys.argv[1]; f = open(p + '.tmp', 'w'); json.dump(dict(os.environ), f); "
            "f.close(); os.replace(p + '.tmp', p)")
    (base / "python").write_text(f"""#!/bin/sh
case ${{1:-}} in
    *_service.py) "{job_python}" -c "{dump}" "{base}/dump/${{1%_service.py}}.json" ;;
esac
exec "{job_python}" "$@"
""")
    (base / "python").chmod(0o755)
    for path in [base, *base.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    (base / "dump").chmod(0o1777)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def job_environment(app, job):
    """The environment cron gave ``job``'s last run, as the wrapper recorded it."""
    return json.loads((app / "dump" / f"{job}.json").read_text())


@pytest.fixture
def mysql_user(mysql_db):
    user = "e2e_" + mysql_db.name[-8:]
    for host in ("%", "localhost"):
        mysql_db.run(f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY %s", args=(MYSQL_PW,))
        mysql_db.run(f"GRANT SELECT ON `{mysql_db.name}`.* TO '{user}'@'{host}'")
    yield user
    mysql_db.run(f"DROP USER '{user}'@'%'", f"DROP USER '{user}'@'localhost'")


def container_env(app, job_python, pg_db, mysql_db, mysql_user, ftp):
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "JOB_USER": "nobody",
        "DATASYNC_APP_DIR": str(app / "app"), "DATASYNC_LOG_DIR": str(app / "logs"),
        "DATASYNC_RUN_DIR": str(app / "run"), "DATASYNC_PYTHON": str(app / "python"),
        "FTP_CRON_SCHEDULE": "* * * * *", "MYSQL_SYNC_CRON_SCHEDULE": "* * * * *", "RUN_ON_START": "false",
        "POSTGRES_HOST": pg_db.server.host, "POSTGRES_PORT": str(pg_db.server.port), "POSTGRES_DB": pg_db.name,
        "POSTGRES_USER": pg_db.server.user,
        "MYSQL_HOST": mysql_db.server.host, "MYSQL_PORT": str(mysql_db.server.port), "MYSQL_DB": mysql_db.name,
        "MYSQL_USER": mysql_user, "MYSQL_TARGET_SCHEMA": "erp",
        "FTP_HOST": ftp.host, "FTP_PORT": str(ftp.port), "FTP_USER": "plant", "LOG_FORMAT": "regex",
        **FTP_LOG_VALUES, **MYSQL_SYNC_VALUES, "FTP_PASS_FILE": str(app / "ftp_pass"),
    }


# the image's job user (Dockerfile; without --system, which warns about uid 10001 here), created in
# start_container's private /etc
IMAGE_USER = ("groupadd --gid 10001 datasync && useradd --uid 10001 --gid 10001 --no-create-home "
              "--home-dir /nonexistent --shell /usr/sbin/nologin datasync")


def start_container(env, setup="true"):
    """start.sh as the container runs it, in a private mount namespace: tmpfs over /etc/cron.d and /run,
    and /etc behind an overlay, so ``setup`` and the usermod/groupmod that renumber the job user change
    only a copy."""
    overlay = Path(env["DATASYNC_APP_DIR"]).parent / "etc-overlay"
    overlay.mkdir(exist_ok=True)
    script = ('mount -t tmpfs tmpfs "$1" && mkdir "$1/upper" "$1/work" && mount -t overlay overlay '
              '-o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc && '
              f'mount -t tmpfs tmpfs /etc/cron.d && mount -t tmpfs tmpfs /run && {setup} && exec "$0"')
    return subprocess.Popen(["unshare", "-m", "sh", "-c", script, env["DATASYNC_APP_DIR"] + "/start.sh", overlay],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop_container(proc, app):
    """After a failed test: cron and the jobs it started must not outlive it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    pidfiles = [app / "run" / "cron.pid", *(app / "run").glob("*_*.pid")]
    for pidfile in pidfiles:
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def cron_log(app):
    path = app / "logs" / "cron.log"
    return path.read_text(errors="replace") if path.exists() else ""


@NEEDS_ROOT
def test_start_sh_under_real_cron(app, job_python, pg_db, mysql_db, mysql_user, inbox):
    mysql_db.run("CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2), "
                 "updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
                 "INSERT INTO orders (id, total) VALUES (1, 9.99), (2, 20.00)")
    inbox.put("press01/today.log", "INFO '$x' \"#%\" cycle started\n")
    ftp = FtpServer(inbox.root)
    env = container_env(app, job_python, pg_db, mysql_db, mysql_user, ftp)
    proc = start_container(env)
    try:
        wait_for(lambda: (app / "run" / "cron.pid").exists(), 20, "cron to start")
        cron_root = Path(f"/proc/{(app / 'run' / 'cron.pid').read_text().strip()}/root")
        for name in ("ftp_log_cron", "mysql_sync_cron"):
            info = (cron_root / "etc/cron.d" / name).stat()
            assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0, name
        ftp_cron = (cron_root / "etc/cron.d/ftp_log_cron").read_text()
        assert "MYSQL_PASSWORD" not in ftp_cron and "FTP_PASS_FILE=" in ftp_cron  # each job: only its variables
        mysql_cron = (cron_root / "etc/cron.d/mysql_sync_cron").read_text()
        assert "MYSQL_PASSWORD_FILE=" in mysql_cron and MYSQL_PW.strip() not in mysql_cron

        wait_for(lambda: "files: 1 seen, 1 loaded" in cron_log(app) and "run finished: 1 table(s), 0 failed"
                 in cron_log(app), 75, "both jobs to run from cron")
        assert pg_db.query("SELECT level, message FROM machine_logs") == [("INFO", "cycle started")]
        assert pg_db.value("SELECT count(*) FROM erp.orders") == 2
        log = cron_log(app)
        for secret in (PASSWORD, MYSQL_PW, PG_PW):
            assert secret not in log
        # each job marks its success after it exits (the HEALTHCHECK reads these); then it holds no lock
        wait_for(lambda: (app / "run/ftp_log.ok").exists() and (app / "run/mysql_sync.ok").exists(), 30, "exits")
        # every value reached the job exactly: on the cron line, or as NAME_FILE the job reads
        for job, values in (("ftp_log", FTP_LOG_VALUES), ("mysql_sync", MYSQL_SYNC_VALUES)):
            seen = job_environment(app, job)
            reader = Reader(seen)
            assert {name: reader.raw(name) for name in values} == values, job
            assert not reader.problems, reader.problems
        seen = job_environment(app, "ftp_log")
        assert seen["FTP_PASS_FILE"] == str(app / "ftp_pass") and seen["FTP_ARCHIVE_DIR"] == ""
        assert "LOG_TIMEZONE" in seen and "LOG_TIMEZONE_FILE" not in seen  # a plain value stays on its line
        seen_by_cron = {**env, "DATASYNC_CRON_DIR": str(cron_root / "etc/cron.d")}
        health = run(app / "app/start.sh", "health", env=seen_by_cron)
        assert health.returncode == 0 and health.stdout.strip() == "ok", health.stdout
        stale = run(app / "app/start.sh", "health", env={**seen_by_cron, "HEALTH_MAX_AGE_MINUTES": "0"})
        assert stale.returncode == 1 and "ftp_log has not succeeded for 0 minutes" in stale.stdout

        with open(app / "run" / "ftp_log.lock", "a") as lock:  # a run that is still going holds this
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            second = run("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                         app / "app/start.sh", "run", "ftp_log", env=env)
        assert second.returncode == 75
        assert "ftp_log: the previous run is still going; this run is skipped (flock)" in cron_log(app)

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "files: 1 seen, 1 loaded" in out  # the jobs' output reached the container's stdout too
    finally:
        stop_container(proc, app)
        ftp.stop()


@NEEDS_ROOT
def test_sigterm_interrupts_a_running_job_cleanly(app, job_python, pg_db, mysql_db, mysql_user, inbox):
    inbox.put("big.log", "".join(f"INFO '$x' \"#%\" line {i}\n" for i in range(400_000)))
    ftp = FtpServer(inbox.root)
    env = container_env(app, job_python, pg_db, mysql_db, mysql_user, ftp)
    env.update(FTP_CRON_SCHEDULE="0 0 1 1 *", MYSQL_SYNC_CRON_SCHEDULE="off", RUN_ON_START="true")
    proc = start_container(env)
    try:
        wait_for(lambda: pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                     "'datasync ftp_log' AND query LIKE 'COPY%%' AND state = 'active' "
                                     "AND datname = current_database()") > 0, 60, "the job's COPY")
        assert "mysql_sync: disabled (schedule off)" in cron_log(app)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        log = cron_log(app)
        assert "stopped by SIGTERM" in log and "ftp_log exited with code 143" in log
        assert pg_db.value("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                            "application_name LIKE 'datasync%%'") == 0
        assert not pg_db.value("SELECT to_regclass('machine_logs') IS NOT NULL AND "
                               "EXISTS (SELECT 1 FROM machine_logs)")
    finally:
        stop_container(proc, app)
        ftp.stop()


def bare_env(app, **extra):
    """start.sh's environment with both jobs off: no server is needed."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "JOB_USER": "nobody",
            "DATASYNC_APP_DIR": str(app / "app"), "DATASYNC_LOG_DIR": str(app / "logs"),
            "DATASYNC_RUN_DIR": str(app / "run"), "DATASYNC_PYTHON": str(app / "python"),
            "FTP_CRON_SCHEDULE": "off", "MYSQL_SYNC_CRON_SCHEDULE": "off", "RUN_ON_START": "false", **extra}


@NEEDS_ROOT
def test_a_job_that_ignores_sigterm_is_killed_after_stop_timeout(app, job_python):
    # the job: a stand-in for the Python start.sh runs that ignores SIGTERM (sleep keeps the ignored signal)
    (app / "python").write_text(f"""#!/bin/sh
case ${{1:-}} in
    *_service.py) trap '' TERM; touch "{app}/dump/${{1%_service.py}}.started"; exec sleep 600 ;;
esac
exec "{job_python}" "$@"
""")
    env = bare_env(app, FTP_CRON_SCHEDULE="0 0 1 1 *", RUN_ON_START="true", STOP_TIMEOUT="1",
                   POSTGRES_HOST="h", POSTGRES_DB="d", POSTGRES_USER="u", FTP_HOST="h", FTP_USER="u")
    proc = start_container(env)
    try:
        wait_for(lambda: (app / "dump/ftp_log.started").exists() and (app / "run/ftp_log.pid").exists(), 30,
                 "the job to start")
        pid = (app / "run/ftp_log.pid").read_text().strip()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
        log = cron_log(app)
        assert f"ftp_log (pid {pid}) still running 1s after SIGTERM; killing it (SIGKILL)" in log, log
        assert "ftp_log exited with code 137" in log, log
        assert not (app / "run/ftp_log.pid").exists()
    finally:
        stop_container(proc, app)


@NEEDS_ROOT
def test_start_sh_never_takes_a_host_users_logs_folder(app, job_python):
    # logs/ belongs to a host user (uid 4242, no account needed): JOB_UID naming another uid is refused
    # with exit 2 and the folder keeps its owner; without JOB_UID the jobs run as its owner
    os.chown(app / "logs", 4242, 4242)
    proc = start_container(bare_env(app, JOB_USER="datasync", JOB_UID="4343"), IMAGE_USER)
    try:
        wait_for(lambda: proc.poll() is not None or (app / "run/cron.pid").exists(), 60, "start.sh to decide")
        assert proc.poll() == 2, cron_log(app)
        out, _ = proc.communicate(timeout=30)
        assert ("start.sh: JOB_UID=4343, but the logs folder " f"{app / 'logs'} belongs to uid 4242") in out, out
        assert out.count("\n") == 1, out  # one line
        info = (app / "logs").stat()
        assert (info.st_uid, info.st_gid) == (4242, 4242)
    finally:
        stop_container(proc, app)

    proc = start_container(bare_env(app, JOB_USER="datasync"), IMAGE_USER)
    try:
        wait_for(lambda: "cron started" in cron_log(app), 60, "cron to start")
        assert "jobs run as datasync (uid 4242, gid 4242)" in cron_log(app)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        info = (app / "logs").stat()
        assert (info.st_uid, info.st_gid) == (4242, 4242)
    finally:
        stop_container(proc, app)


@NEEDS_ROOT
def test_a_root_owned_logs_folder_is_handed_to_job_uid(app, job_python):
    # a named volume or a server's checkout of root's: the folder goes to JOB_UID/JOB_GID
    proc = start_container(bare_env(app, JOB_USER="datasync", JOB_UID="4343", JOB_GID="4344"), IMAGE_USER)
    try:
        wait_for(lambda: "cron started" in cron_log(app), 60, "cron to start")
        assert "jobs run as datasync (uid 4343, gid 4344)" in cron_log(app)
        info = (app / "logs").stat()
        assert (info.st_uid, info.st_gid) == (4343, 4344)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    finally:
        stop_container(proc, app)


def test_cron_log_is_rotated_and_output_appended(tmp_path):
    logs, rundir = tmp_path / "logs", tmp_path / "run"
    logs.mkdir()
    rundir.mkdir()
    (logs / "cron.log").write_text("old line\n" * 200)
    (logs / "cron.log.1").write_text("older\n")
    env = start_env(DATASYNC_APP_DIR=str(ROOT), DATASYNC_LOG_DIR=str(logs), DATASYNC_RUN_DIR=str(rundir),
                    DATASYNC_PYTHON=sys.executable, CRON_LOG_MAX_BYTES="1000", CRON_LOG_KEEP="2",
                    DATASYNC_ENV_FILE="/nonexistent", POSTGRES_HOST=None)
    result = run(START, "run", "mysql_sync", env=env)
    assert result.returncode == 2  # the job itself stops at its configuration check
    assert (logs / "cron.log.2").read_text() == "older\n"
    assert (logs / "cron.log.1").read_text() == "old line\n" * 200
    current = (logs / "cron.log").read_text()
    assert "configuration: POSTGRES_HOST is required" in current and "mysql_sync exited with code 2" in current
