"""Settings of ftp_log_service.py: the remote server and folder, and how lines are parsed and stored."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from .common import CommonSettings, PostgresSettings, read_common, read_postgres
from .reader import Reader, Secret, read_environment

LOG_FORMAT_CHOICES = ("auto", "csv", "jsonl", "regex", "raw")


@dataclass(frozen=True)
class FtpSettings:
    """The remote side of ftp_log_service.py."""

    protocol: str
    host: str
    port: int
    user: str
    password: Secret   # FTP_PASS
    passive: bool
    ftps_verify: bool
    ftps_ca_file: str
    sftp_private_key: Secret
    sftp_private_key_passphrase: Secret
    sftp_known_hosts: str
    sftp_host_key: str
    sftp_insecure_accept_any_host_key: bool
    remote_dir: str
    recursive: bool
    file_pattern: tuple
    min_file_age: float
    delete_after_sync: bool
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
    log_format: str
    log_formats: tuple  # ((glob, format), ...) from LOG_FORMATS, first match wins
    log_regex: re.Pattern | None
    log_encoding: str
    log_fallback_encoding: str
    log_timezone: object
    log_max_line_bytes: int


@dataclass(frozen=True)
class FtpLogSettings:
    common: CommonSettings
    postgres: PostgresSettings
    ftp: FtpSettings
    logs: LogFormatSettings


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
        ftps_ca_file=r.path("FTPS_CA_FILE"), sftp_private_key=r.secret("SFTP_PRIVATE_KEY"),
        sftp_private_key_passphrase=r.secret("SFTP_PRIVATE_KEY_PASSPHRASE"),
        sftp_known_hosts=r.path("SFTP_KNOWN_HOSTS"), sftp_host_key=host_key or "",
        sftp_insecure_accept_any_host_key=r.bool("SFTP_INSECURE_ACCEPT_ANY_HOST_KEY"),
        remote_dir=posixpath.normpath(remote_dir), recursive=r.bool("FTP_RECURSIVE"),
        file_pattern=r.list("FTP_FILE_PATTERN"), min_file_age=r.float("FTP_MIN_FILE_AGE"),
        delete_after_sync=r.bool("DELETE_AFTER_SYNC"),
        archive_dir=posixpath.normpath(archive_dir) if archive_dir else "",
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


def read_log_formats(r: Reader, state_schema) -> LogFormatSettings:
    settings = LogFormatSettings(
        target_schema=r.str("FTP_TARGET_SCHEMA"), target_table=r.str("FTP_TARGET_TABLE"),
        rejects_table=r.str("FTP_REJECTS_TABLE"), machine_id_regex=r.regex("FTP_MACHINE_ID_REGEX"),
        log_format=r.choice("LOG_FORMAT", LOG_FORMAT_CHOICES), log_formats=parse_formats(r),
        log_regex=r.regex("LOG_REGEX"), log_encoding=r.encoding("LOG_ENCODING"),
        log_fallback_encoding=r.encoding("LOG_FALLBACK_ENCODING"), log_timezone=r.timezone("LOG_TIMEZONE"),
        log_max_line_bytes=r.int("LOG_MAX_LINE_BYTES", 65536, 1 << 30),
    )
    uses_regex = settings.log_format == "regex" or any(f == "regex" for _, f in settings.log_formats)
    if uses_regex and settings.log_regex is None and not r.reported("LOG_REGEX"):
        r.fail("LOG_REGEX", "is required when LOG_FORMAT or LOG_FORMATS uses the regex format")
    if settings.log_regex is not None and not settings.log_regex.groupindex:
        r.fail("LOG_REGEX", "must have named groups, such as (?P<level>\\w+)")
    if settings.target_table and settings.target_table == settings.rejects_table:
        r.fail("FTP_REJECTS_TABLE", "must differ from FTP_TARGET_TABLE")
    if settings.target_schema and settings.target_schema == state_schema:
        r.fail("FTP_TARGET_SCHEMA", f"must differ from DATASYNC_STATE_SCHEMA ({state_schema})")
    return settings


def load_ftp_log(environ=None) -> FtpLogSettings:
    """Read and validate everything ftp_log_service.py needs."""
    r = Reader(read_environment(environ))
    postgres = read_postgres(r)
    settings = FtpLogSettings(common=read_common(r), postgres=postgres, ftp=read_ftp(r),
                              logs=read_log_formats(r, postgres.state_schema))
    r.done()
    return settings
