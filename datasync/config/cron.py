"""The container's cron files: each job's schedule and exactly the variables it reads, values intact.

start.sh (as root) runs ``python -m datasync.config cron-file ...``; the lists of variables come from
the registry (``job_variables``), so nothing is copied into shell.

Debian's cron (3.0pl1, env.c ``load_env``) reads an environment line ``NAME=VALUE`` like this:
a value that starts with a quote ends at the *next* such quote (anything but blanks after it makes
the line "not an environment setting", and then the whole file is silently ignored as a bad entry);
trailing blanks are then stripped, quoted or not; then one more pair of matching surrounding quotes
is removed; and cron reads at most 998 bytes of a line. So a value is written on the line,
in whichever quote it does not contain, only when none of that can change it: printable, no
trailing blank, not wrapped in a pair of equal quotes, short enough. Any other value (both kinds
of quote, a line break, a tab, a trailing space, ``'quoted'``, a 2 KB key) goes to a file the job
user owns, mode 0400, and the line carries ``NAME_FILE`` instead; every variable accepts one.
A file's content is the value plus one newline, which the reader removes again, so a value that
itself ends in a newline arrives intact. ``%`` is special only in cron's command field, never here.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from .variables import REQUIRED, VARIABLES, job_variables

# start.sh's own settings (README, "The container"); the jobs' settings are the registry's
CONTAINER_VARIABLES = ("FTP_CRON_SCHEDULE", "MYSQL_SYNC_CRON_SCHEDULE", "RUN_ON_START", "HEALTH_MAX_AGE_MINUTES",
                       "CRON_LOG_MAX_BYTES", "CRON_LOG_KEEP", "STOP_TIMEOUT", "JOB_UID", "JOB_GID", "JOB_USER",
                       "DATASYNC_APP_DIR", "DATASYNC_LOG_DIR", "DATASYNC_RUN_DIR", "DATASYNC_CRON_DIR",
                       "DATASYNC_PYTHON")
SCHEDULE_VARIABLES = {"ftp_log": "FTP_CRON_SCHEDULE", "mysql_sync": "MYSQL_SYNC_CRON_SCHEDULE"}
SPECIAL_SCHEDULES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
MAX_LINE_BYTES = 990  # cron reads 998 bytes of a line (MAX_ENVSTR 1000); a margin comes off that
FIXED_LINES = ("SHELL=/bin/sh", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG=C.UTF-8", 'MAILTO=""')
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
_NAMES = {"month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
          "weekday": ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}


class CronError(Exception):
    """Settings that no cron file can be written from; each line of ``problems`` names one."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


# ---------------------------------------------------------------- one value


def inline_line(name, value):
    """The cron line that hands ``value`` over exactly, or None when only a NAME_FILE can."""
    if not value.isprintable() or value != value.rstrip():
        return None  # control characters, line breaks, tabs; cron strips trailing blanks
    if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
        return None  # cron removes a second pair of surrounding quotes
    quote = '"' if '"' not in value else "'" if "'" not in value else None
    if quote is None:
        return None  # a quoted value ends at the next quote of its kind
    line = f"{name}={quote}{value}{quote}"
    return line if len(line.encode("utf-8", "surrogateescape")) <= MAX_LINE_BYTES else None


@dataclass(frozen=True)
class EnvFile:
    """A value that travels as NAME_FILE: ``path`` holds ``value`` plus one newline."""

    path: Path
    value: str

    def content(self):
        return (self.value + "\n").encode("utf-8", "surrogateescape")


def environment(job, environ, env_dir, extra=()):
    """(lines, files) for ``job``: a line for each of its variables that is set, in registry order.

    ``extra`` is (name, value) pairs start.sh adds for ``start.sh run`` (its folders, log rotation);
    they and NAME_FILE paths must fit on a line. Raises CronError when a variable is given both
    directly and as NAME_FILE, or when a value that must fit on a line does not.
    """
    lines, files, problems = [], [], []
    for name, value in extra:
        line = inline_line(name, value)
        if line is None:
            problems.append(f"{name}={value!r} cannot be written on a cron line")
        lines.append(line)
    for name in job_variables(job):
        value, path = environ.get(name), environ.get(f"{name}_FILE")
        if value and path:
            problems.append(f"{name}: set either {name} or {name}_FILE, not both")
            continue
        if path is not None and not (path == "" and value):
            line = inline_line(f"{name}_FILE", path)
            if line is None:
                problems.append(f"{name}_FILE: the path {path!r} cannot be handed to cron; use a plainer path")
            lines.append(line)
        if value is None or (value == "" and path):
            continue
        line = inline_line(name, value)
        if line is None:
            env_file = EnvFile(Path(env_dir) / job / name, value)
            files.append(env_file)
            line = inline_line(f"{name}_FILE", str(env_file.path))
            if line is None:
                problems.append(f"the folder {env_dir!r} cannot be handed to cron; use a plainer path")
        lines.append(line)
    if problems:
        raise CronError(problems)
    return lines, files


# ---------------------------------------------------------------- schedules and required settings


def _field_ok(text, field):
    name, low, high = field
    for item in text.split(","):
        span, _, step = item.partition("/")
        if "/" in item and not (step.isdigit() and len(step) <= 2):
            return False
        if span == "*":
            continue
        ends = span.split("-", 1)
        if any(end.isalpha() for end in ends):
            if not all(end.lower() in _NAMES.get(name, ()) for end in ends):
                return False
            continue
        if not all(end.isdigit() and end.isascii() and low <= int(end) <= high for end in ends):
            return False
    return True


def schedule_problem(variable, pattern):
    """None when cron accepts ``pattern`` (5 fields, an @keyword, or ``off``), else the message."""
    if pattern == "off" or pattern in SPECIAL_SCHEDULES:
        return None
    fields = pattern.split()
    if len(fields) != 5:
        return f"{variable}='{pattern}' is not a cron pattern: it needs 5 fields (minute hour day month weekday)"
    if not all(_field_ok(text, field) for text, field in zip(fields, _FIELDS)):
        return (f"{variable}='{' '.join(fields)}' is not a valid cron pattern "
                "(minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)")
    return None


def missing_required(job, environ):
    """The required variables of ``job`` set neither directly nor as NAME_FILE."""
    return [name for name in job_variables(job) if VARIABLES[name].default is REQUIRED
            and not environ.get(name) and not environ.get(f"{name}_FILE")]


def check(schedules, environ):
    """Every problem with these schedules ({job: pattern}) and the jobs' required settings."""
    problems = []
    for job, pattern in schedules.items():
        problem = schedule_problem(SCHEDULE_VARIABLES[job], pattern)
        if problem:
            problems.append(problem)
    for job, pattern in schedules.items():
        missing = missing_required(job, environ) if pattern != "off" else []
        if missing:
            problems.append(f"{job} job: required variable(s) not set: {' '.join(missing)} "
                            "(or their _FILE variants); see .env.example")
    return problems


# ---------------------------------------------------------------- files


def render(job, schedule, user, command, lines, stamp=""):
    header = f"# written by start.sh{stamp}; edit the schedule in start.sh or the environment"
    return "\n".join([header, *FIXED_LINES, *lines, f"{schedule} {user} {command}", ""])


def _write(path, data, mode, owner=None):
    """Write ``data`` to ``path`` atomically with ``mode`` (and uid/gid ``owner``) from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _private_dir(path, owner):
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(path, *owner)
    path.chmod(0o700)


def account(user):
    """(uid, gid) of ``user``; CronError when there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise CronError([f"JOB_USER '{user}' does not exist"]) from None
    return entry.pw_uid, entry.pw_gid


def write_env_files(files, owner):
    """Each value file, mode 0400, in folders of mode 0700, all owned by ``owner`` (uid, gid)."""
    for env_file in files:
        _private_dir(env_file.path.parent.parent, owner)
        _private_dir(env_file.path.parent, owner)
        _write(env_file.path, env_file.content(), 0o400, owner)


def write_cron_files(schedules, environ, *, cron_dir, env_dir, user, command, extra=(), stamp="",
                     check_only=False):
    """Check everything, then write (or, for ``off``, remove) each job's cron file and value files.

    ``command`` gets the job's name appended (``/start.sh run`` → ``/start.sh run ftp_log``). Returns
    one line per job saying what was done. Raises CronError before anything is written; with
    ``check_only`` nothing is written at all.
    """
    problems = check(schedules, environ)
    if "%" in command or not command.isprintable():
        problems.append(f"the job command {command!r} cannot be written in a cron file")
    try:
        owner = account(user)
    except CronError as exc:
        problems.extend(exc.problems)
    prepared = {}
    for job, pattern in schedules.items():
        if pattern == "off":
            continue
        try:
            prepared[job] = environment(job, environ, env_dir, extra)
        except CronError as exc:
            problems.extend(exc.problems)
    if problems:
        raise CronError(problems)
    if check_only:
        return []
    done = []
    for job, pattern in schedules.items():
        path = Path(cron_dir) / f"{job}_cron"
        if pattern == "off":
            path.unlink(missing_ok=True)
            done.append(f"{job}: disabled (schedule off)")
            continue
        lines, files = prepared[job]
        write_env_files(files, owner)
        text = render(job, " ".join(pattern.split()), user, f"{command} {job}", lines, stamp)
        _write(path, text.encode("utf-8", "surrogateescape"), 0o600)
        via = f" ({len(files)} value(s) through NAME_FILE)" if files else ""
        done.append(f"{job}: scheduled '{pattern}' as {user}{via}")
    return done
