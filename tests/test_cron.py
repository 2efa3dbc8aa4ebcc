"""datasync/config/cron.py: the cron files start.sh writes, checked against Debian cron's own parser.

``debian_cron_env`` is a line-by-line port of ``load_env`` in Debian's cron 3.0pl1-162 (env.c); the
container test (tests/test_container.py) checks the same against the real cron.
"""

from __future__ import annotations

import getpass
import os
import stat
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasync.config import VARIABLES, Reader, job_variables
from datasync.config.cron import (
    CronError,
    check,
    environment,
    inline_line,
    missing_required,
    schedule_problem,
    write_cron_files,
    write_env_files,
)
from tests.conftest import ROOT

MAX_ENVSTR = 1000
NAMEI, NAME, EQ1, EQ2, VALUEI, VALUE, FINI, ERROR = range(8)
BLANKS = b" \t\n\v\f\r"


def debian_cron_env(line):
    """(name, value) as Debian's cron reads the environment line ``line`` (bytes), or None when it
    takes the line for something else (and then ignores the whole file as a bad entry)."""
    text = line[:MAX_ENVSTR - 2]  # get_string(envstr, MAX_ENVSTR - 1) keeps 998 bytes
    name, value = bytearray(), bytearray()
    out, state, quote, i = name, NAMEI, None, 0
    while state != ERROR and i < len(text):
        c = text[i:i + 1]
        if state in (NAMEI, VALUEI):
            if c in (b"'", b'"'):
                quote = c
                i += 1
            state += 1
            if i >= len(text):
                break
            c = text[i:i + 1]
        if state in (NAME, VALUE):
            if quote:
                if c == quote:
                    state += 1
                    i += 1
                    continue
                if state == NAME and c == b"=":
                    state = ERROR
                    continue
            elif state == NAME:
                if c.isspace():
                    i += 1
                    state += 1
                    continue
                if c == b"=":
                    state += 1
                    continue
            out += c
            i += 1
        elif state == EQ1:
            if c == b"=":
                state, out, quote = state + 1, value, None
            elif not c.isspace():
                state = ERROR
            i += 1
        else:  # EQ2, FINI
            if c.isspace():
                i += 1
            else:
                state += 1
    if state != FINI and not (state == VALUE and not quote):
        return None
    value = bytes(value).rstrip(BLANKS)  # unquoted values, then strdtb() for all of them
    if len(value) >= 2 and value[:1] in (b"'", b'"') and value[-1:] == value[:1]:
        value = value[1:-1]
    if len(name) + 1 + len(value) >= MAX_ENVSTR - 1:
        return None
    return bytes(name).decode(), value.decode("utf-8", "surrogateescape")


def arrives(name, value, tmp_path):
    """What the job reads for ``name`` when start.sh hands it ``value`` through cron."""
    lines, files = environment("ftp_log", {name: value}, tmp_path)
    write_env_files(files, (os.getuid(), os.getgid()))
    seen = dict(debian_cron_env(line.encode("utf-8", "surrogateescape")) for line in lines)
    return seen, Reader(seen).raw(name)


def test_the_port_of_cron_reads_what_issue_10_saw():
    # 'quoted' arrived as quoted, "dq" as dq, " spaced " as " spaced" (the old start.sh wrote these lines)
    assert debian_cron_env(b"""LOG_TIMEZONE="'quoted'\"""") == ("LOG_TIMEZONE", "quoted")
    assert debian_cron_env(b"""X='"dq"'""") == ("X", "dq")
    assert debian_cron_env(b'X=" spaced "') == ("X", " spaced")
    assert debian_cron_env(b'X="a "b" c"') is None  # a quoted value ends at the next quote
    assert debian_cron_env(b"X=plain value  ") == ("X", "plain value")


@pytest.mark.parametrize("value, line", [
    ("plain", 'P="plain"'),
    ("", 'P=""'),
    ("50% $HOME #x \\n \\", 'P="50% $HOME #x \\n \\"'),
    ('say "hi"', "P='say \"hi\"'"),
    ("it's", 'P="it\'s"'),
    (" leading space", 'P=" leading space"'),
    ("'starts with a quote", 'P="\'starts with a quote"'),
])
def test_values_cron_keeps_go_on_the_line(value, line):
    assert inline_line("P", value) == line
    assert debian_cron_env(line.encode()) == ("P", value)


@pytest.mark.parametrize("value", [
    "'quoted'", '"dq"', "' spaced '", "trailing space ", "trailing tab\t", "both ' and \" quotes",
    "line\nbreak", "ends in a newline\n", "\n", "x" * 1000, "nbsp\u00a0", "carriage\rreturn", "crlf\r\n",
])
def test_values_cron_would_change_go_through_a_file(value, tmp_path):
    assert inline_line("P", value) is None
    seen, read = arrives("POSTGRES_PASSWORD", value, tmp_path)
    assert read == value
    assert seen == {"POSTGRES_PASSWORD_FILE": str(tmp_path / "ftp_log" / "POSTGRES_PASSWORD")}
    path = tmp_path / "ftp_log" / "POSTGRES_PASSWORD"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400 and path.read_bytes() == value.encode() + b"\n"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_longest_value_on_a_line_still_fits_what_cron_keeps():
    name = "LOG_REGEX"
    longest = next(n for n in range(1100, 0, -1) if inline_line(name, "x" * n))
    assert debian_cron_env(inline_line(name, "x" * longest).encode()) == (name, "x" * longest)


@settings(max_examples=400, deadline=None)
# Values from the environment hold no NUL and no lone surrogates
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=1200))
def test_every_value_arrives_exactly(tmp_path_factory, value):
    line = inline_line("LOG_REGEX", value)
    if line is not None:
        assert debian_cron_env(line.encode()) == ("LOG_REGEX", value)
    _, read = arrives("LOG_REGEX", value, tmp_path_factory.mktemp("env"))
    assert read == (value or VARIABLES["LOG_REGEX"].default)


def test_each_job_gets_only_its_variables_in_registry_order(tmp_path):
    environ = {name: "v" for name in VARIABLES} | {"UNRELATED": "x"}
    for job in ("ftp_log", "mysql_sync"):
        lines, files = environment(job, environ, tmp_path)
        assert [line.split("=", 1)[0] for line in lines] == job_variables(job) and not files
    ftp_lines, _ = environment("ftp_log", environ, tmp_path)
    assert not any(line.startswith(("MYSQL_PASSWORD", "UNRELATED")) for line in ftp_lines)


def test_name_file_given_is_passed_on_and_empty_values_stay_empty(tmp_path):
    environ = {"FTP_PASS_FILE": "/run/secrets/ftp pass", "FTP_PASS": "", "POSTGRES_PASSWORD": "",
               "POSTGRES_PASSWORD_FILE": "", "FTP_ARCHIVE_DIR": ""}
    lines, files = environment("ftp_log", environ, tmp_path)
    assert lines == ['POSTGRES_PASSWORD_FILE=""', 'POSTGRES_PASSWORD=""', 'FTP_PASS_FILE="/run/secrets/ftp pass"',
                     'FTP_ARCHIVE_DIR=""'] and not files
    assert [debian_cron_env(line.encode()) for line in lines][-1] == ("FTP_ARCHIVE_DIR", "")


def test_a_value_given_twice_or_a_path_cron_cannot_carry_is_refused(tmp_path):
    with pytest.raises(CronError) as error:
        environment("ftp_log", {"FTP_PASS": "a", "FTP_PASS_FILE": "/b", "SFTP_KNOWN_HOSTS_FILE": "/k "}, tmp_path,
                    extra=[("DATASYNC_APP_DIR", "/app\n")])
    assert error.value.problems == [
        "DATASYNC_APP_DIR='/app\\n' cannot be written on a cron line",
        "FTP_PASS: set either FTP_PASS or FTP_PASS_FILE, not both",
        "SFTP_KNOWN_HOSTS_FILE: the path '/k ' cannot be handed to cron; use a plainer path"]


@pytest.mark.parametrize("pattern", ["*/5 * * * *", "2,17,32,47 * * * *", "0 6-18/2 * * mon-fri", "@hourly", "off",
                                     "0 0 1 jan-mar sun", "59 23 31 12 7", "*  *\t* * *"])
def test_schedules_cron_accepts(pattern):
    assert schedule_problem("FTP_CRON_SCHEDULE", pattern) is None


@pytest.mark.parametrize("pattern, message", [
    ("*/5 * * *", "FTP_CRON_SCHEDULE='*/5 * * *' is not a cron pattern: it needs 5 fields"),
    ("61 * * * *", "FTP_CRON_SCHEDULE='61 * * * *' is not a valid cron pattern (minute 0-59"),
    ("* * * * mon-fry", "is not a valid cron pattern"), ("* * * * */x", "is not a valid cron pattern"),
    ("* * 0 * *", "is not a valid cron pattern"), ("jan * * * *", "is not a valid cron pattern"),
    ("* * * * 1,,2", "is not a valid cron pattern"), ("@reboot", "needs 5 fields"),
])
def test_schedules_cron_refuses(pattern, message):
    assert message in schedule_problem("FTP_CRON_SCHEDULE", pattern)


def test_required_settings_count_name_file_and_off_jobs_need_none():
    environ = {"POSTGRES_HOST": "h", "POSTGRES_DB": "d", "POSTGRES_USER_FILE": "/u", "FTP_HOST": "f"}
    assert missing_required("ftp_log", environ) == ["FTP_USER"]
    assert check({"ftp_log": "* * * * *", "mysql_sync": "off"}, environ) == [
        "ftp_log job: required variable(s) not set: FTP_USER (or their _FILE variants); see .env.example"]


def write(tmp_path, schedules, environ, **kw):
    options = {"cron_dir": tmp_path / "cron.d", "env_dir": tmp_path / "env", "user": getpass.getuser(),
               "command": "/start.sh run", "extra": [("DATASYNC_APP_DIR", "/app")], **kw}
    (tmp_path / "cron.d").mkdir(exist_ok=True)
    return write_cron_files(schedules, environ, **options)


REQUIRED = {"POSTGRES_HOST": "h", "POSTGRES_DB": "d", "POSTGRES_USER": "u", "FTP_HOST": "f", "FTP_USER": "u",
            "MYSQL_HOST": "m", "MYSQL_DB": "e", "MYSQL_USER": "r"}


def test_cron_files_are_written_private_with_the_schedule_last(tmp_path):
    done = write(tmp_path, {"ftp_log": "*/5  * * * *", "mysql_sync": "off"},
                 {**REQUIRED, "FTP_PASS": "both ' and \" quotes"})
    user = getpass.getuser()
    assert done == [f"ftp_log: scheduled '*/5  * * * *' as {user} (1 value(s) through NAME_FILE)",
                    "mysql_sync: disabled (schedule off)"]
    cron = tmp_path / "cron.d" / "ftp_log_cron"
    assert stat.S_IMODE(cron.stat().st_mode) == 0o600 and not (tmp_path / "cron.d" / "mysql_sync_cron").exists()
    lines = cron.read_text().splitlines()
    assert lines[1:6] == ["SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "LANG=C.UTF-8", 'MAILTO=""', 'DATASYNC_APP_DIR="/app"']
    assert f'FTP_PASS_FILE="{tmp_path}/env/ftp_log/FTP_PASS"' in lines
    assert lines[-1] == f"*/5 * * * * {user} /start.sh run ftp_log"
    assert all(debian_cron_env(line.encode()) for line in lines[1:-1])
    assert (tmp_path / "env" / "ftp_log" / "FTP_PASS").read_text() == "both ' and \" quotes\n"


def test_nothing_is_written_when_anything_is_wrong(tmp_path):
    with pytest.raises(CronError) as error:
        write(tmp_path, {"ftp_log": "* * * * *", "mysql_sync": "61 * * * *"}, {**REQUIRED, "MYSQL_DB": ""},
              user="no-such-user-here", command="/start.sh run %")
    assert error.value.problems == [
        "MYSQL_SYNC_CRON_SCHEDULE='61 * * * *' is not a valid cron pattern "
        "(minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)",
        "mysql_sync job: required variable(s) not set: MYSQL_DB (or their _FILE variants); see .env.example",
        "the job command '/start.sh run %' cannot be written in a cron file",
        "JOB_USER 'no-such-user-here' does not exist"]
    assert not any((tmp_path / "cron.d").iterdir()) and not (tmp_path / "env").exists()
    assert write(tmp_path, {"ftp_log": "* * * * *"}, {**REQUIRED, "FTP_PASS": "'q'"}, check_only=True) == []
    assert not any((tmp_path / "cron.d").iterdir()) and not (tmp_path / "env").exists()


def test_the_command_line_prints_cron_lines_and_exits_2_on_problems(tmp_path):
    env = {"PATH": os.environ["PATH"], "FTP_PASS": "'x'", "LOG_LEVEL": "DEBUG"}
    result = subprocess.run([sys.executable, "-m", "datasync.config", "cron-env", "ftp_log", "--env-dir",
                             str(tmp_path)], env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['LOG_LEVEL="DEBUG"', f'FTP_PASS_FILE="{tmp_path}/ftp_log/FTP_PASS"']
    result = subprocess.run([sys.executable, "-m", "datasync.config", "--prog", "start.sh", "cron-file", "--check",
                             "--command", "/start.sh run", "ftp_log=* * * *"], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("start.sh: FTP_CRON_SCHEDULE='* * * *' is not")
    names = subprocess.run([sys.executable, "-m", "datasync.config", "variables", "mysql_sync"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split()
    assert names == job_variables("mysql_sync")
