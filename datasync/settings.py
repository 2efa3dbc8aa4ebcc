"""Settings: environment, then an optional ``.env`` file, then ``NAME_FILE`` values.

Every variable is declared once in ``VARIABLES`` (name, default, meaning); the README's
configuration table is checked against it by a test.  ``load_*`` functions read the
variables they need, collect *every* problem, and raise one ConfigError naming each
variable.  The result is a frozen dataclass; secrets are wrapped in ``Secret`` so that a
repr, a log line or a traceback never shows them.  Any variable may instead be given as
``NAME_FILE`` (the path of a file holding the value): Docker secrets, and the way start.sh
hands cron a value that no cron environment line can carry.
"""

from __future__ import annotations

import codecs
import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from .errors import ConfigError

REQUIRED = object()


@dataclass(frozen=True)
class Variable:
    name: str
    default: object
    help: str
    group: str
    secret: bool = False


def _v(group, name, default, help, secret=False):
    return Variable(name, default, help, group, secret)


VARIABLES = {v.name: v for v in [
    # --- PostgreSQL target (both services)
    _v("postgres", "POSTGRES_HOST", REQUIRED, "PostgreSQL host name or address"),
    _v("postgres", "POSTGRES_PORT", "5432", "PostgreSQL port"),
    _v("postgres", "POSTGRES_DB", REQUIRED, "PostgreSQL database"),
    _v("postgres", "POSTGRES_USER", REQUIRED, "PostgreSQL user"),
    _v("postgres", "POSTGRES_PASSWORD", "", "PostgreSQL password (or POSTGRES_PASSWORD_FILE)", True),
    _v("postgres", "POSTGRES_SSLMODE", "prefer", "libpq sslmode (disable ... verify-full)"),
    _v("postgres", "POSTGRES_SSLROOTCERT", "", "CA certificate file for verify-ca / verify-full"),
    _v("postgres", "DATASYNC_STATE_SCHEMA", "datasync", "schema holding run history, watermarks and the file ledger"),
    # --- common behaviour
    _v("common", "LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    _v("common", "LOG_JSON", "false", "true: one JSON object per log line"),
    _v("common", "CONNECT_RETRIES", "3", "attempts to reach each server before giving up (exit 3)"),
    _v("common", "CONNECT_RETRY_DELAY", "2", "seconds before the 2nd attempt; doubles after each failure"),
    _v("common", "CONNECT_TIMEOUT", "10", "seconds to wait for one connection attempt"),
    # --- MySQL source
    _v("mysql", "MYSQL_HOST", REQUIRED, "MySQL/MariaDB host name or address"),
    _v("mysql", "MYSQL_PORT", "3306", "MySQL port"),
    _v("mysql", "MYSQL_DB", REQUIRED, "MySQL database to copy"),
    _v("mysql", "MYSQL_USER", REQUIRED, "MySQL user (needs SELECT; SHOW VIEW not required)"),
    _v("mysql", "MYSQL_PASSWORD", "", "MySQL password (or MYSQL_PASSWORD_FILE)", True),
    _v("mysql", "MYSQL_SSL_CA", "", "CA certificate file: enables TLS and verifies the server"),
    _v("mysql", "MYSQL_SSL_CERT", "", "client certificate file (with MYSQL_SSL_KEY)"),
    _v("mysql", "MYSQL_SSL_KEY", "", "client private key file (with MYSQL_SSL_CERT)"),
    _v("mysql", "MYSQL_TABLES", "*", "comma-separated globs of tables to copy"),
    _v("mysql", "MYSQL_EXCLUDE_TABLES", "", "comma-separated globs of tables to leave out"),
    _v("mysql", "MYSQL_TARGET_SCHEMA", "", "PostgreSQL schema for the copies (default: MYSQL_DB, lower case)"),
    _v("mysql", "MYSQL_CURSOR_COLUMNS", "updated_at", "column names that make a table incremental"),
    _v("mysql", "MYSQL_LOOKBACK_SECONDS", "300", "incremental reads start this far before the watermark"),
    _v("mysql", "MYSQL_SYNC_MODES", "", "per-table overrides: orders=incremental:changed_on,log=append,blobs=skip"),
    _v("mysql", "MYSQL_SKIP_DELETES", "", "globs of incremental tables whose deletes are not propagated"),
    _v("mysql", "MYSQL_TINYINT1_AS_BOOLEAN", "true", "map TINYINT(1) to boolean (false: smallint)"),
    # --- FTP / FTPS / SFTP source
    _v("ftp", "FTP_PROTOCOL", "ftp", "ftp, ftps (explicit TLS) or sftp"),
    _v("ftp", "FTP_HOST", REQUIRED, "server host name or address"),
    _v("ftp", "FTP_PORT", "", "server port (default 21, or 22 for sftp)"),
    _v("ftp", "FTP_USER", REQUIRED, "login name"),
    _v("ftp", "FTP_PASS", "", "password (or FTP_PASS_FILE)", True),
    _v("ftp", "FTP_PASSIVE", "true", "ftp/ftps: passive mode (false: active)"),
    _v("ftp", "FTPS_VERIFY", "true", "ftps: verify the server certificate (false logs a warning)"),
    _v("ftp", "FTPS_CA_FILE", "", "ftps: CA bundle used to verify the server certificate"),
    _v("ftp", "SFTP_PRIVATE_KEY", "", "sftp: private key text, OpenSSH or PEM (or SFTP_PRIVATE_KEY_FILE)", True),
    _v("ftp", "SFTP_PRIVATE_KEY_PASSPHRASE", "", "sftp: passphrase of the private key", True),
    _v("ftp", "SFTP_KNOWN_HOSTS", "", "sftp: known_hosts file the host key must match"),
    _v("ftp", "SFTP_HOST_KEY", "", "sftp: pinned host key fingerprint, SHA256:... as ssh-keygen -lf prints"),
    _v("ftp", "SFTP_INSECURE_ACCEPT_ANY_HOST_KEY", "false", "sftp: true accepts an unknown host key (logs a warning)"),
    _v("ftp", "FTP_REMOTE_DIR", "/", "remote folder to read"),
    _v("ftp", "FTP_RECURSIVE", "true", "also read sub-folders"),
    _v("ftp", "FTP_FILE_PATTERN", "*.log,*.csv,*.txt,*.jsonl,*.gz", "comma-separated globs of file names to load"),
    _v("ftp", "FTP_MIN_FILE_AGE", "60", "seconds since a file's last change before it is read"),
    _v("ftp", "DELETE_AFTER_SYNC", "false", "delete (or archive) files once fully loaded"),
    _v("ftp", "FTP_ARCHIVE_DIR", "", "move loaded files here instead of deleting them"),
    _v("ftp", "FTP_TARGET_SCHEMA", "public", "PostgreSQL schema of machine_logs and machine_log_rejects"),
    _v("ftp", "FTP_TARGET_TABLE", "machine_logs", "table the parsed log lines go to (created when missing)"),
    _v("ftp", "FTP_REJECTS_TABLE", "machine_log_rejects", "table for lines that could not be parsed"),
    _v("ftp", "FTP_MACHINE_ID_REGEX", "", "regex on the remote path; group 1 (or 'machine') is the machine id"),
    _v("ftp", "LOG_FORMAT", "auto", "auto, csv, jsonl, regex or raw"),
    _v("ftp", "LOG_FORMATS", "", "per-pattern formats: *.csv=csv,press*/*.log=regex"),
    _v("ftp", "LOG_REGEX", "", "regex with named groups for the regex format"),
    _v("ftp", "LOG_ENCODING", "utf-8", "encoding of the log files"),
    _v("ftp", "LOG_FALLBACK_ENCODING", "cp1252", "encoding for lines that are not valid in LOG_ENCODING"),
    _v("ftp", "LOG_TIMEZONE", "UTC", "time zone of timestamps that carry no offset"),
    _v("ftp", "LOG_MAX_LINE_BYTES", "8388608", "a longer line is rejected (its first 64 KiB kept) instead of buffered"),
]}


def read_environment(environ=None, env_file=".env"):
    """Return the effective environment: the process's, over an optional .env file."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(environ.get("DATASYNC_ENV_FILE") or env_file)
    if path.is_file():
        merged = {k: v for k, v in dotenv_values(path).items() if v is not None}
        merged.update(environ)
        return merged
    return environ


@dataclass(frozen=True)
class Secret:
    """A string that never shows itself in repr(), str() or logs."""

    value: str = field(repr=False)

    def __repr__(self):
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self):
        return bool(self.value)


class Reader:
    """Reads declared variables from an environment, collecting every problem."""

    def __init__(self, env):
        self.env = env
        self.problems = []

    def raw(self, name):
        var = VARIABLES[name]
        file_var = f"{name}_FILE"
        if self.env.get(file_var):
            if self.env.get(name):
                return self.fail(name, f"set either {name} or {file_var}, not both")
            return self._read_secret_file(file_var)
        value = self.env.get(name, "")
        if value == "":
            if var.default is REQUIRED:
                return self.fail(name, "is required")
            return var.default
        return value

    def _read_secret_file(self, file_var):
        path = self.env[file_var]
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return self.fail(file_var, f"cannot read {path}: {exc.__class__.__name__}")
        return text[:-1] if text.endswith("\n") else text  # one trailing newline, as editors add

    def fail(self, name, message):
        self.problems.append(f"{name} {message}")
        return None

    def str(self, name):
        return self.raw(name)

    def secret(self, name):
        value = self.raw(name)
        return Secret(value or "")

    def int(self, name, lo=None, hi=None):
        value = self.raw(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            return self.fail(name, f"must be a whole number, got {value!r}")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            return self.fail(name, f"must be between {lo} and {hi}, got {number}")
        return number

    def float(self, name, lo=0.0):
        value = self.raw(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return self.fail(name, f"must be a number, got {value!r}") if value is not None else None
        if number < lo:
            return self.fail(name, f"must be at least {lo}, got {number}")
        return number

    def bool(self, name):
        value = self.raw(name)
        if value is None:
            return None
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return self.fail(name, f"must be true or false, got {value!r}")

    def choice(self, name, choices):
        value = self.raw(name)
        if value is not None and value.lower() not in choices:
            return self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value.lower() if value is not None else None

    def list(self, name):
        value = self.raw(name) or ""
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def path(self, name):
        value = self.raw(name)
        if value and not Path(value).is_file():
            return self.fail(name, f"file not found: {value}")
        return value or ""

    def regex(self, name):
        value = self.raw(name)
        if not value:
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            return self.fail(name, f"is not a valid regular expression: {exc}")

    def done(self):
        if self.problems:
            raise ConfigError(list(dict.fromkeys(self.problems)))  # a variable read twice is reported once


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    db: str
    user: str
    password: Secret
    sslmode: str
    sslrootcert: str
    state_schema: str


@dataclass(frozen=True)
class CommonSettings:
    log_level: str
    log_json: bool
    connect_retries: int
    connect_retry_delay: float
    connect_timeout: int


@dataclass(frozen=True)
class MySQLSettings:
    host: str
    port: int
    db: str
    user: str
    password: Secret
    ssl_ca: str
    ssl_cert: str
    ssl_key: str


@dataclass(frozen=True)
class TableMode:
    """A per-table override from MYSQL_SYNC_MODES."""

    mode: str  # incremental, full, append, skip
    column: str | None = None


@dataclass(frozen=True)
class MysqlSyncSettings:
    common: CommonSettings
    postgres: PostgresSettings
    mysql: MySQLSettings
    tables: tuple
    exclude_tables: tuple
    target_schema: str
    cursor_columns: tuple
    lookback_seconds: int
    modes: dict
    skip_deletes: tuple
    tinyint1_as_boolean: bool

    def selects(self, table):
        """True when ``table`` matches MYSQL_TABLES and not MYSQL_EXCLUDE_TABLES."""
        return (any(fnmatch.fnmatchcase(table, p) for p in self.tables)
                and not any(fnmatch.fnmatchcase(table, p) for p in self.exclude_tables))

    def mode_for(self, table):
        for pattern, mode in self.modes.items():
            if fnmatch.fnmatchcase(table, pattern):
                return mode
        return None

    def propagates_deletes(self, table):
        return not any(fnmatch.fnmatchcase(table, p) for p in self.skip_deletes)


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOG_LEVELS = ("debug", "info", "warning", "error")


def read_common(r: Reader) -> CommonSettings:
    return CommonSettings(
        log_level=(r.choice("LOG_LEVEL", LOG_LEVELS) or "info").upper(),
        log_json=r.bool("LOG_JSON"),
        connect_retries=r.int("CONNECT_RETRIES", 1, 100),
        connect_retry_delay=r.float("CONNECT_RETRY_DELAY"),
        connect_timeout=r.int("CONNECT_TIMEOUT", 1, 3600),
    )


def read_postgres(r: Reader) -> PostgresSettings:
    return PostgresSettings(
        host=r.str("POSTGRES_HOST"),
        port=r.int("POSTGRES_PORT", 1, 65535),
        db=r.str("POSTGRES_DB"),
        user=r.str("POSTGRES_USER"),
        password=r.secret("POSTGRES_PASSWORD"),
        sslmode=r.choice("POSTGRES_SSLMODE", SSL_MODES),
        sslrootcert=r.path("POSTGRES_SSLROOTCERT"),
        state_schema=r.str("DATASYNC_STATE_SCHEMA"),
    )


def read_mysql(r: Reader) -> MySQLSettings:
    settings = MySQLSettings(
        host=r.str("MYSQL_HOST"),
        port=r.int("MYSQL_PORT", 1, 65535),
        db=r.str("MYSQL_DB"),
        user=r.str("MYSQL_USER"),
        password=r.secret("MYSQL_PASSWORD"),
        ssl_ca=r.path("MYSQL_SSL_CA"),
        ssl_cert=r.path("MYSQL_SSL_CERT"),
        ssl_key=r.path("MYSQL_SSL_KEY"),
    )
    if bool(settings.ssl_cert) != bool(settings.ssl_key):
        r.fail("MYSQL_SSL_CERT", "and MYSQL_SSL_KEY must be set together")
    return settings


MODE_RE = re.compile(r"^(incremental|full|append|skip)(?::(.+))?$")


def parse_modes(r: Reader) -> dict:
    """MYSQL_SYNC_MODES: ``table=mode[:column]`` items, tables may be globs."""
    modes = {}
    for item in r.list("MYSQL_SYNC_MODES"):
        table, sep, spec = item.partition("=")
        match = MODE_RE.match(spec.strip()) if sep else None
        if not table.strip() or not match:
            r.fail("MYSQL_SYNC_MODES", f"item {item!r} is not table=incremental[:column], "
                   "table=append[:column], table=full or table=skip")
            continue
        modes[table.strip()] = TableMode(match.group(1), match.group(2))
    return modes


def load_mysql_sync(environ=None) -> MysqlSyncSettings:
    """Read and validate everything mysql_sync_service.py needs."""
    r = Reader(read_environment(environ))
    settings = MysqlSyncSettings(
        common=read_common(r),
        postgres=read_postgres(r),
        mysql=read_mysql(r),
        tables=r.list("MYSQL_TABLES") or ("*",),
        exclude_tables=r.list("MYSQL_EXCLUDE_TABLES"),
        target_schema=r.str("MYSQL_TARGET_SCHEMA") or (r.env.get("MYSQL_DB") or "").lower(),
        cursor_columns=r.list("MYSQL_CURSOR_COLUMNS"),
        lookback_seconds=r.int("MYSQL_LOOKBACK_SECONDS", 0, 10**9),
        modes=parse_modes(r),
        skip_deletes=r.list("MYSQL_SKIP_DELETES"),
        tinyint1_as_boolean=r.bool("MYSQL_TINYINT1_AS_BOOLEAN"),
    )
    r.done()
    return settings


def load_logging(environ=None):
    """(level, json) for the log set-up; invalid values fall back to INFO text (and are reported later)."""
    r = Reader(read_environment(environ))
    level, json_lines = r.choice("LOG_LEVEL", LOG_LEVELS), r.bool("LOG_JSON")
    return (level or "info").upper(), bool(json_lines)


@dataclass(frozen=True)
class FtpSettings:
    """The remote side of ftp_log_service.py."""

    protocol: str
    host: str
    port: int
    user: str
    password: Secret
    passive: bool
    ftps_verify: bool
    ftps_ca_file: str
    sftp_key: Secret
    sftp_key_passphrase: Secret
    known_hosts: str
    host_key: str
    insecure_host_key: bool
    remote_dir: str
    recursive: bool
    patterns: tuple
    min_age: float
    delete: bool
    archive_dir: str

    @property
    def url(self):
        """Where the files come from, without the password: the ledger's ``source``."""
        return f"{self.protocol}://{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class LogFormatSettings:
    """How lines are parsed and where they go."""

    target_schema: str
    target_table: str
    rejects_table: str
    machine_id_regex: re.Pattern | None
    default_format: str
    formats: tuple  # ((glob, format), ...) from LOG_FORMATS, first match wins
    regex: re.Pattern | None
    encoding: str
    fallback_encoding: str
    timezone: object
    max_line_bytes: int

    def format_for(self, relative_path):
        for pattern, fmt in self.formats:
            if path_matches(relative_path, (pattern,)):
                return fmt
        return self.default_format


def path_matches(relative_path, patterns):
    """A remote file's path below FTP_REMOTE_DIR, or its name alone, matches one of the globs."""
    name = posixpath.basename(relative_path)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(relative_path, p) for p in patterns)


@dataclass(frozen=True)
class FtpLogSettings:
    common: CommonSettings
    postgres: PostgresSettings
    ftp: FtpSettings
    logs: LogFormatSettings


LOG_FORMAT_CHOICES = ("auto", "csv", "jsonl", "regex", "raw")


def read_ftp(r: Reader) -> FtpSettings:
    protocol = r.choice("FTP_PROTOCOL", ("ftp", "ftps", "sftp")) or "ftp"
    port = r.int("FTP_PORT", 1, 65535) if r.str("FTP_PORT") else (22 if protocol == "sftp" else 21)
    host_key = r.str("SFTP_HOST_KEY")
    if host_key and not re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}=?", host_key):
        r.fail("SFTP_HOST_KEY", "must be a SHA256:... fingerprint as printed by ssh-keygen -lf")
    remote_dir, archive_dir = r.str("FTP_REMOTE_DIR") or "/", r.str("FTP_ARCHIVE_DIR")
    return FtpSettings(
        protocol=protocol, host=r.str("FTP_HOST"), port=port, user=r.str("FTP_USER"),
        password=r.secret("FTP_PASS"), passive=r.bool("FTP_PASSIVE"), ftps_verify=r.bool("FTPS_VERIFY"),
        ftps_ca_file=r.path("FTPS_CA_FILE"), sftp_key=r.secret("SFTP_PRIVATE_KEY"),
        sftp_key_passphrase=r.secret("SFTP_PRIVATE_KEY_PASSPHRASE"), known_hosts=r.path("SFTP_KNOWN_HOSTS"),
        host_key=host_key or "", insecure_host_key=r.bool("SFTP_INSECURE_ACCEPT_ANY_HOST_KEY"),
        remote_dir=posixpath.normpath(remote_dir), recursive=r.bool("FTP_RECURSIVE"),
        patterns=r.list("FTP_FILE_PATTERN"), min_age=r.float("FTP_MIN_FILE_AGE"),
        delete=r.bool("DELETE_AFTER_SYNC"), archive_dir=posixpath.normpath(archive_dir) if archive_dir else "",
    )


def parse_formats(r: Reader) -> tuple:
    """LOG_FORMATS: ``glob=format`` items, in order."""
    formats = []
    for item in r.list("LOG_FORMATS"):
        pattern, sep, fmt = item.partition("=")
        if not sep or not pattern.strip() or fmt.strip().lower() not in LOG_FORMAT_CHOICES:
            r.fail("LOG_FORMATS", f"item {item!r} is not glob=format, format one of {', '.join(LOG_FORMAT_CHOICES)}")
            continue
        formats.append((pattern.strip(), fmt.strip().lower()))
    return tuple(formats)


def read_encoding(r: Reader, name):
    """A codec that keeps b"\\n" as the line end (UTF-16 and friends cannot be split on bytes)."""
    value = r.str(name)
    try:
        if value and "\n".encode(value) == b"\n" and b"a\n".decode(value) == "a\n":
            return codecs.lookup(value).name
    except (LookupError, UnicodeError):
        pass
    return r.fail(name, f"must be an ASCII-compatible encoding such as utf-8, cp1252 or latin-1, got {value!r}")


def read_timezone(r: Reader, name):
    value = r.str(name)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return r.fail(name, f"is not a known time zone (such as UTC or Europe/Berlin), got {value!r}")


def read_log_formats(r: Reader) -> LogFormatSettings:
    settings = LogFormatSettings(
        target_schema=r.str("FTP_TARGET_SCHEMA"), target_table=r.str("FTP_TARGET_TABLE"),
        rejects_table=r.str("FTP_REJECTS_TABLE"), machine_id_regex=r.regex("FTP_MACHINE_ID_REGEX"),
        default_format=r.choice("LOG_FORMAT", LOG_FORMAT_CHOICES), formats=parse_formats(r),
        regex=r.regex("LOG_REGEX"), encoding=read_encoding(r, "LOG_ENCODING"),
        fallback_encoding=read_encoding(r, "LOG_FALLBACK_ENCODING"), timezone=read_timezone(r, "LOG_TIMEZONE"),
        max_line_bytes=r.int("LOG_MAX_LINE_BYTES", 65536, 1 << 30),
    )
    uses_regex = settings.default_format == "regex" or any(f == "regex" for _, f in settings.formats)
    if uses_regex and settings.regex is None and not r.problems:
        r.fail("LOG_REGEX", "is required when LOG_FORMAT or LOG_FORMATS uses the regex format")
    if settings.regex is not None and not settings.regex.groupindex:
        r.fail("LOG_REGEX", "must have named groups, such as (?P<level>\\w+)")
    if settings.target_table and settings.target_table == settings.rejects_table:
        r.fail("FTP_REJECTS_TABLE", "must differ from FTP_TARGET_TABLE")
    return settings


def load_ftp_log(environ=None) -> FtpLogSettings:
    """Read and validate everything ftp_log_service.py needs."""
    r = Reader(read_environment(environ))
    settings = FtpLogSettings(common=read_common(r), postgres=read_postgres(r), ftp=read_ftp(r),
                              logs=read_log_formats(r))
    r.done()
    return settings
