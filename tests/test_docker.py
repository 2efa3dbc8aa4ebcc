"""The README's quick start in a real Docker engine: build, up, healthy, both jobs load the demo data.

``cp .env.example .env && docker compose up -d --build`` runs in a copy of the checkout owned by a
non-root host user (uid 4242), with ``tests/docker/compose.test.yaml`` added: stand-ins for the
registry images (tests/docker/standins.sh builds them from Debian) and one private network namespace
for the whole stack. The engine is the one that answers, or a private dockerd (tests/docker_engine.py).
.env gets a cron schedule of every minute, a small CRON_LOG_MAX_BYTES and passwords with every
character Compose and cron treat specially, written as .env.example says to write them.
No wall-clock assertions: how long things took is printed (the shared machine's timing varies).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from datasync.config import VARIABLES
from datasync.config.cron import CONTAINER_VARIABLES
from tests.conftest import ROOT
from tests.docker_engine import Engine, Unavailable
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

HOST_UID = 4242  # owns the checkout; no account is needed on the host
COMPOSE_FILES = ("-f", "docker-compose.yaml", "-f", "tests/docker/compose.test.yaml")
PROJECT = "datasync-e2e"
SERVICES = ("postgres", "mysql", "ftp", "datasync")
# Both jobs read POSTGRES_PASSWORD: it starts with a quote and ends with a space (cron would change
# both), and holds $, #, %, a backslash and both kinds of quote. The MySQL and FTP passwords too.
PG_PW = "'pg' $word #1 %2 \"dq\" \\ x "
MYSQL_PW = "my \"pw\" 'x' $HOME #2 %3"
FTP_PW = "ftp $x #y %z \"dq\""


def env_quote(value):
    """A value as .env.example says to write one: in single quotes, a single quote as \\'."""
    return "'" + value.replace("'", "\\'") + "'"


def say(request, text):
    """A line on the terminal even while output is captured: the measured times."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        request.config.pluginmanager.get_plugin("terminalreporter").write_line(f"test_docker: {text}")


class Stack:
    def __init__(self, engine, checkout, config_env):
        self.engine, self.checkout = engine, checkout
        self.env = {**engine.env, **config_env, "COMPOSE_PROJECT_NAME": PROJECT}

    def run(self, *args, check=True, timeout=600, **kw):
        result = subprocess.run([str(a) for a in args], cwd=self.checkout, env=self.env, capture_output=True,
                                text=True, timeout=timeout, **kw)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def compose(self, *args, **kw):
        return self.run("docker", "compose", *COMPOSE_FILES, *args, **kw)

    def exec(self, service, *args, user=None, **kw):
        return self.compose("exec", "-T", *(("-u", user) if user else ()), service, *args, **kw)

    def psql(self, sql):
        """Rows of a query in the demo database, as tab-separated text."""
        return self.exec("postgres", "psql", "-U", "datasync", "datasync", "-AtF", "\t", "-c", sql).stdout.strip()

    def mysql(self, sql):
        return self.exec("mysql", "sh", "-c", 'MYSQL_PWD="$MYSQL_PASSWORD" mysql -u "$MYSQL_USER" "$MYSQL_DATABASE" '
                         '-e "$0"', sql)

    def container(self, service):
        return f"{PROJECT}-{service}-1"

    def inspect(self, service, template):
        return self.run("docker", "inspect", "--format", template, self.container(service)).stdout.strip()

    def log(self):
        """cron.log with the rotated files before it (CRON_LOG_MAX_BYTES is small here)."""
        logs = self.checkout / "logs"
        rotated = sorted(logs.glob("cron.log.*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
        return "".join(p.read_text(errors="replace") for p in [*rotated, logs / "cron.log"] if p.exists())


def wait_until(predicate, timeout, what):
    wait_for(predicate, timeout, what, every=1)


def copy_checkout(target):
    """The working tree as git sees it (tracked and new files, without logs/ and ignored files)."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if name.startswith("logs/") or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    (target / "logs").mkdir(exist_ok=True)


def write_env(checkout):
    """cp .env.example .env, then what the test changes in it."""
    text = (ROOT / ".env.example").read_text()
    changes = {"POSTGRES_PASSWORD": env_quote(PG_PW), "MYSQL_PASSWORD": env_quote(MYSQL_PW),
               "FTP_PASS": env_quote(FTP_PW), "FTP_CRON_SCHEDULE": "'* * * * *'",
               "MYSQL_SYNC_CRON_SCHEDULE": "'* * * * *'", "CRON_LOG_MAX_BYTES": "3000"}
    for name, value in changes.items():
        text, count = re.subn(rf"^#? ?{name}=.*$", lambda _, n=name, v=value: f"{n}={v}", text, flags=re.M)
        assert count == 1, name
    (checkout / ".env").write_text(text)


def as_host_user(*command):
    return subprocess.run(["setpriv", "--reuid", str(HOST_UID), "--regid", str(HOST_UID), "--clear-groups",
                           *command], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def engine(request):
    engine = Engine()
    started = time.monotonic()
    try:
        engine.start()
    except Unavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    say(request, f"{'private engine started' if engine.private else 'engine answers'}: "
                 f"{time.monotonic() - started:.0f} s")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def stack(engine, request):
    started = time.monotonic()
    standins = ROOT / "tests" / "docker" / "standins.sh"
    config_env = {}
    if subprocess.run(["docker", "compose", "version"], env=engine.env, capture_output=True).returncode != 0:
        plugin = subprocess.run(["bash", standins, "plugin"], env=engine.env, capture_output=True, text=True)
        assert plugin.returncode == 0, plugin.stderr
        config_env["DOCKER_CONFIG"] = plugin.stdout.strip()
    if not os.environ.get("DATASYNC_TEST_REAL_IMAGES"):
        images = subprocess.run(["bash", standins, "images"], env=engine.env, capture_output=True, text=True,
                                timeout=1800)
        assert images.returncode == 0, images.stderr
    say(request, f"engine and stand-in images ready in {time.monotonic() - started:.0f} s")

    base = Path(tempfile.mkdtemp(prefix="datasync-docker-"))
    base.chmod(0o755)
    checkout = base / "checkout"
    checkout.mkdir()
    copy_checkout(checkout)
    write_env(checkout)
    subprocess.run(["chown", "-R", f"{HOST_UID}:{HOST_UID}", str(checkout)], check=True)
    stack = Stack(engine, checkout, config_env)
    stack.compose("down", "-v", "--remove-orphans", check=False)  # what an interrupted run left
    try:
        up = time.monotonic()
        stack.compose("up", "-d", "--build", timeout=1800)
        wait_until(lambda: all(stack.inspect(s, "{{.State.Health.Status}}") == "healthy" for s in SERVICES), 600,
                   "every service to be healthy")
        say(request, f"docker compose up -d --build, then healthy: {time.monotonic() - up:.0f} s")
        yield stack
    finally:
        for service in SERVICES:
            logs = stack.compose("logs", "--no-color", "--tail", "30", service, check=False)
            if request.session.testsfailed:
                print(f"---- {service}\n{logs.stdout}{logs.stderr}")
        stack.compose("down", "-v", "--remove-orphans", check=False)
        shutil.rmtree(base, ignore_errors=True)
        say(request, f"whole Docker test: {time.monotonic() - started:.0f} s")


def first_runs_done(stack):
    def done():
        log = stack.log()
        failed = re.search(r"^.*start\.sh: (ftp_log|mysql_sync) exited with code .*$", log, re.M)
        assert not failed, log[-3000:]
        return "run finished: 3 table(s), 0 failed" in log and "files: 3 seen, 3 loaded" in log
    wait_until(done, 300, "both jobs' first runs")


def test_both_jobs_load_the_demo_data(stack):
    first_runs_done(stack)
    assert stack.psql("SELECT count(*) FROM machine_logs") == "13"
    assert stack.psql("SELECT count(*) FROM machine_log_rejects") == "1"
    assert stack.psql("SELECT machine_id, level FROM machine_logs WHERE message LIKE 'tool T07%'") == "cnc07\tERROR"
    assert stack.psql("SELECT count(*) FROM erp.customers") == "3"
    assert stack.psql("SELECT count(*) FROM erp.products") == "3"
    assert stack.psql("SELECT id, status, note FROM erp.orders ORDER BY id").splitlines() == [
        "1\tpaid\tdeliver to gate 3", "2\tnew\t", '3\tshipped\turgent: "line down"']


def test_the_passwords_arrive_exactly_through_compose_and_cron(stack):
    # Both jobs logged in with them (scram-sha-256 in PostgreSQL, caching_sha2_password in MySQL, FTP):
    # the rows above prove it. Cron could not carry POSTGRES_PASSWORD or MYSQL_PASSWORD on a line.
    first_runs_done(stack)
    mysql_cron = stack.exec("datasync", "cat", "/etc/cron.d/mysql_sync_cron").stdout
    ftp_cron = stack.exec("datasync", "cat", "/etc/cron.d/ftp_log_cron").stdout
    assert 'POSTGRES_PASSWORD_FILE="/run/datasync/env/mysql_sync/POSTGRES_PASSWORD"' in mysql_cron
    assert 'MYSQL_PASSWORD_FILE="' in mysql_cron and "FTP_PASS" not in mysql_cron
    assert f"FTP_PASS='{FTP_PW}'" in ftp_cron and "MYSQL_PASSWORD" not in ftp_cron
    assert stack.exec("datasync", "cat", "/run/datasync/env/ftp_log/POSTGRES_PASSWORD").stdout == PG_PW + "\n"
    env = dict(line.split("=", 1) for line in json.loads(stack.inspect("datasync", "{{json .Config.Env}}")))
    assert (env["POSTGRES_PASSWORD"], env["MYSQL_PASSWORD"], env["FTP_PASS"]) == (PG_PW, MYSQL_PW, FTP_PW)
    image_env = {"PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
                 "PIP_DISABLE_PIP_VERSION_CHECK", "DATASYNC_PYTHON", "PYTHON_VERSION", "GPG_KEY", "PYTHON_SHA256"}
    unknown = set(env) - set(VARIABLES) - set(CONTAINER_VARIABLES) - image_env
    assert not unknown, f"the datasync container gets variables it does not read: {sorted(unknown)}"
    for secret in (PG_PW, MYSQL_PW, FTP_PW):
        assert secret.strip() not in stack.log()


def test_cron_files_and_the_job_user(stack):
    first_runs_done(stack)
    stats = stack.exec("datasync", "stat", "-c", "%n %a %U", "/etc/cron.d/ftp_log_cron",
                       "/etc/cron.d/mysql_sync_cron").stdout.split("\n")
    assert stats[:2] == ["/etc/cron.d/ftp_log_cron 600 root", "/etc/cron.d/mysql_sync_cron 600 root"]
    # cron runs each job as the job user: the user field of its job line (cron.d format: 5 schedule fields,
    # user, command); test_cron_brings_a_changed_mysql_row_over sees what that run leaves behind
    for job in ("ftp_log", "mysql_sync"):
        job_line = stack.exec("datasync", "cat", f"/etc/cron.d/{job}_cron").stdout.strip().splitlines()[-1]
        assert re.fullmatch(rf"(\S+ ){{5}}datasync /start\.sh run {job}", job_line), job_line
    # the job user took the uid and gid of the folder the host mounted; each run marks its success
    assert stack.exec("datasync", "id", "-u", "datasync").stdout.strip() == str(HOST_UID)
    owners = stack.exec("datasync", "stat", "-c", "%u:%g", "/run/datasync/ftp_log.ok",
                        "/run/datasync/mysql_sync.ok").stdout.split()
    assert owners == [f"{HOST_UID}:{HOST_UID}"] * 2
    assert "jobs run as datasync (uid 4242, gid 4242)" in stack.log()


def test_cron_brings_a_changed_mysql_row_over(stack, request):
    """A row changed in MySQL arrives with cron's next run, and that run ran as the job user: the mark
    of success it leaves belongs to the job user (the start-up run's mark, made through setpriv, is
    removed first; cron running the job as root would leave root's)."""
    first_runs_done(stack)
    ok = "/run/datasync/mysql_sync.ok"

    def exists():
        return stack.exec("datasync", "test", "-e", ok, check=False).returncode == 0
    wait_until(exists, 120, "the start-up run's mark of success")  # that run is over: no other run makes one
    stack.exec("datasync", "rm", ok)
    stack.mysql("UPDATE orders SET status = 'cancelled', note = 'changed by the Docker test' WHERE id = 2")
    changed = time.monotonic()
    wait_until(lambda: stack.psql("SELECT status, note FROM erp.orders WHERE id = 2")
               == "cancelled\tchanged by the Docker test", 200, "cron's next mysql_sync run")
    say(request, f"the changed row arrived {time.monotonic() - changed:.0f} s later (schedule: every minute)")
    wait_until(exists, 120, "cron's run to mark its success")
    assert stack.exec("datasync", "stat", "-c", "%u:%g", ok).stdout.strip() == f"{HOST_UID}:{HOST_UID}"


def test_readme_commands_work_as_written(stack):
    first_runs_done(stack)
    for job in ("ftp_log", "mysql_sync"):
        wait_until(lambda j=job: stack.exec("datasync", "/start.sh", "run", j, user="datasync", check=False)
                   .returncode == 0, 120, f"start.sh run {job} (exit 75 while cron's run holds the lock)")
    for script, options in (("mysql_sync_service.py", ("--status", "--dry-run", "--verify")),
                            ("ftp_log_service.py", ("--status", "--dry-run"))):
        for option in options:
            result = stack.exec("datasync", "python", script, option, user="datasync", check=False)
            assert result.returncode == 0, (script, option, result.stdout[-2000:], result.stderr[-2000:])
    query = stack.exec("postgres", "psql", "-U", "datasync", "datasync", "-c",
                       "SELECT machine_id, logged_at, level, message FROM machine_logs ORDER BY logged_at",
                       "-c", "SELECT * FROM erp.orders", "-c", "SELECT * FROM machine_log_rejects")
    assert "(13 rows)" in query.stdout and "(3 rows)" in query.stdout and "(1 row)" in query.stdout
    assert "files: 3 seen" in stack.compose("logs", "datasync").stdout  # docker compose logs shows cron.log


def test_the_ftp_servers_health_check_leaves_no_log_lines(stack):
    # it looks for the listening socket instead of connecting (every 5 s): every session the server logs
    # is a job's login (one may be logging in right now)
    first_runs_done(stack)
    log = stack.compose("logs", "--no-color", "ftp").stdout
    logins = log.count("logged in.")
    assert logins >= 1 and log.count("FTP session opened") - logins <= 1, log[-3000:]


def test_the_host_user_keeps_full_use_of_logs(stack):
    first_runs_done(stack)
    logs = stack.checkout / "logs"
    wait_until(lambda: (logs / "cron.log.1").exists(), 200, "cron.log to be rotated (CRON_LOG_MAX_BYTES=3000)")
    for path in [logs, *logs.iterdir()]:  # the jobs write and rotate as the folder's owner
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o600) == (HOST_UID, HOST_UID, 0o600), path
    for command in (["sh", "-c", f"echo host-user-was-here >>{logs}/cron.log"], ["touch", f"{logs}/mine"],
                    ["mv", f"{logs}/mine", f"{logs}/mine2"], ["cp", f"{logs}/cron.log", f"{logs}/mine3"],
                    ["rm", f"{logs}/mine2", f"{logs}/mine3"]):
        result = as_host_user(*command)
        assert result.returncode == 0, (command, result.stderr)


def test_compose_stop_stops_every_container_cleanly(stack, request):
    """A job blocked behind a lock while the stack stops: every container exits 0 (137 would mean the
    grace period ran out), and the job is stopped by SIGTERM: it waits for the lock with LOCK_TIMEOUT
    (30 s) far above STOP_TIMEOUT (8 s), so only the cancel of its statement ends it in time (start.sh
    would kill it, and log so). The change it was to bring over arrives with the next run."""
    first_runs_done(stack)
    note = "changed while the copy was locked"
    locker = subprocess.Popen(["docker", "compose", *COMPOSE_FILES, "exec", "-T", "postgres", "psql", "-U",
                               "datasync", "datasync"], cwd=stack.checkout, env=stack.env, stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        locker.stdin.write("BEGIN; LOCK TABLE erp.orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);\n")
        locker.stdin.flush()
        wait_until(lambda: stack.psql("SELECT count(*) FROM pg_locks WHERE relation = 'erp.orders'::regclass "
                                      "AND mode = 'AccessExclusiveLock' AND granted") == "1", 60, "the lock")
        stack.mysql(f"UPDATE orders SET note = '{note}' WHERE id = 3")  # no run can copy it while locked
        stack.compose("exec", "-d", "-u", "datasync", "datasync", "/start.sh", "run", "mysql_sync")
        wait_until(lambda: stack.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                      "'datasync mysql_sync' AND wait_event_type = 'Lock'") != "0", 120,
                   "mysql_sync to wait for the lock")
        stopping = time.monotonic()
        stack.compose("stop", timeout=120)
        seconds = time.monotonic() - stopping
    finally:
        locker.kill()
        locker.wait()
    codes = {s: stack.inspect(s, "{{.State.ExitCode}}") for s in SERVICES}
    # logs/cron.log and its rotated files on the host: a job writes on in the file it opened, even when
    # another run has rotated it since (so no line order is relied on; no earlier run was stopped)
    log = stack.log()
    stop_lines = [line.split("start.sh: ", 1)[-1] for line in log.splitlines()
                  if "SIGTERM" in line or "SIGKILL" in line or "exited with code" in line]
    say(request, f"docker compose stop took {seconds:.1f} s with a job blocked behind a lock; exit codes {codes}")
    say(request, "the blocked job: " + "; ".join(stop_lines))
    assert codes == dict.fromkeys(SERVICES, "0")
    assert "stopped by SIGTERM" in log and "mysql_sync exited with code 143" in log, stop_lines
    assert "killing it (SIGKILL)" not in log, stop_lines

    # the next run (RUN_ON_START, then cron) brings the table over
    stack.compose("start", timeout=600)
    wait_until(lambda: all(stack.inspect(s, "{{.State.Health.Status}}") == "healthy" for s in SERVICES), 600,
               "every service to be healthy again")
    wait_until(lambda: stack.psql("SELECT note FROM erp.orders WHERE id = 3") == note, 200,
               "the next mysql_sync run to bring erp.orders over")
