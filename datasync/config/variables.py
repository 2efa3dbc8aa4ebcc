"""Every setting, declared once: name, default, meaning, and which jobs read it.

The README's configuration table and ``.env.example`` are checked against this registry by
tests, and start.sh hands each job exactly the variables listed for it (``job_variables``).
"""

from __future__ import annotations

from dataclasses import dataclass

REQUIRED = object()
JOBS = ("mysql_sync", "ftp_log")
GROUP_JOBS = {"postgres": JOBS, "common": JOBS, "mysql": ("mysql_sync",), "ftp": ("ftp_log",)}


@dataclass(frozen=True)
class Variable:
    name: str
    default: object
    help: str
    group: str
    secret: bool = False
    jobs: tuple = ()  # the jobs that read it (from the group unless given)


def _v(group, name, default, help, secret=False, jobs=None):
    return Variable(name, default, help, group, secret, jobs or GROUP_JOBS[group])


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
    _v("common", "LOCK_TIMEOUT", "30", "seconds to wait for a lock another session holds before that table or file "
       "fails (PostgreSQL and MySQL)"),
    # --- MySQL source
    _v("mysql", "MYSQL_HOST", REQUIRED, "MySQL/MariaDB host name or address"),
    _v("mysql", "MYSQL_PORT", "3306", "MySQL port"),
    _v("mysql", "MYSQL_DB", REQUIRED, "MySQL database to copy"),
    _v("mysql", "MYSQL_USER", REQUIRED, "MySQL user (needs SELECT only)"),
    _v("mysql", "MYSQL_PASSWORD", "", "MySQL password (or MYSQL_PASSWORD_FILE)", True),
    _v("mysql", "MYSQL_SSL_CA", "", "CA certificate file: enables TLS and verifies the server"),
    _v("mysql", "MYSQL_SSL_CERT", "", "client certificate file (with MYSQL_SSL_KEY)"),
    _v("mysql", "MYSQL_SSL_KEY", "", "client private key file (with MYSQL_SSL_CERT)"),
    _v("mysql", "MYSQL_TABLES", "*", "comma-separated globs of tables to copy"),
    _v("mysql", "MYSQL_EXCLUDE_TABLES", "", "comma-separated globs of tables to leave out"),
    _v("mysql", "MYSQL_TARGET_SCHEMA", "", "PostgreSQL schema for the copies (default: MYSQL_DB, lower case)"),
    _v("mysql", "MYSQL_CURSOR_COLUMNS", "updated_at", "column names that make a table incremental"),
    _v("mysql", "MYSQL_LOOKBACK_SECONDS", "300", "incremental reads start this far before the watermark"),
    _v("mysql", "MYSQL_SYNC_MODES", "",
       "per-table overrides: orders=incremental:changed_on,log=append,items=diff,blobs=full,tmp=skip"),
    _v("mysql", "MYSQL_SKIP_DELETES", "", "globs of incremental tables whose deletes are not propagated"),
    _v("mysql", "MYSQL_TINYINT1_AS_BOOLEAN", "true", "map TINYINT(1) to boolean (false: smallint)"),
    _v("mysql", "MYSQL_ADOPT_TABLES", "", "globs of existing PostgreSQL tables the sync may take over on its first "
       "sync (their rows are replaced)"),
    _v("mysql", "MYSQL_DROP_GONE_TABLES", "false", "true: drop the copies of tables that no longer exist in MySQL "
       "(false: a warning each run)"),
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
    _v("ftp", "FTP_TARGET_SCHEMA", "public", "PostgreSQL schema of machine_logs and machine_log_rejects",
       jobs=JOBS),  # the MySQL sync refuses to write into it
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


def job_variables(job):
    """The variables ``job`` (mysql_sync or ftp_log) reads, in registry order."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r} (one of {', '.join(JOBS)})")
    return [v.name for v in VARIABLES.values() if job in v.jobs]
