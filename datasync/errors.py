"""One exception tree for both services; each class maps to a documented exit code.

    DataSyncError                        base of everything raised on purpose; ``exit_code``
    ├── ConfigError             exit 2   bad settings or arguments, or credentials / a database / a key that a
    │   │                                server refused (every problem listed at once)
    │   └── HostKeyRejected              an SFTP server's host key is not the one SFTP_KNOWN_HOSTS or
    │                                    SFTP_HOST_KEY names (unknown, or changed): never retried
    ├── UnreachableError        exit 3   a server did not answer after CONNECT_RETRIES attempts
    │   └── ConnectionLost               a connection dropped mid-run: the item is retried once after
    │                                    reconnecting; a second loss ends the run (exit 3)
    ├── ItemError               exit 1   one table or file failed; the run goes on with the others
    │   ├── TableError                   a MySQL table could not be synced
    │   │   ├── ValueRejected            a value PostgreSQL cannot hold as mapped (names table, column, key)
    │   │   └── ChangedOnTheWay          MySQL warned while reading: it changed a value on the way (truncated,
    │   │                                NULLed, a character replaced), so the copy would not be exact
    │   ├── FileError                    a remote file could not be loaded, deleted or archived
    │   │   └── TransferError            listing, reading, deleting or moving it failed (the connection may be gone)
    │   └── LockWaitTimeout              waited LOCK_TIMEOUT seconds for a lock another session holds
    ├── LineRejected                     one log line cannot be parsed (never leaves the load: the line goes to
    │                                    the rejects table with the reason)
    └── Interrupted             exit 143 SIGTERM/SIGINT: the running statements are cancelled, the open
                                         transaction rolls back

Driver errors (pymysql, psycopg2, paramiko, ftplib) are translated where they leave a module,
with ``raise ... from exc`` so the cause stays in debug logs; runlog.py maps what reaches it to
the exit codes, in one place.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 143


class DataSyncError(Exception):
    """Base class: a failure the services report in one line."""

    exit_code = EXIT_FAILED


class ConfigError(DataSyncError):
    """Invalid settings or arguments, or a login a server refused; ``problems`` lists every one found."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class HostKeyRejected(ConfigError):
    """An SFTP server showed a host key that is not the configured one; the message gives its SHA256 fingerprint."""


class UnreachableError(DataSyncError):
    """A server did not answer after bounded retries."""

    exit_code = EXIT_UNREACHABLE


class ConnectionLost(UnreachableError):
    """An open connection dropped (server restarted, connection killed); the item is retried once."""


class ItemError(DataSyncError):
    """A single table or file failed; the run goes on with the others."""


class TableError(ItemError):
    """A MySQL table could not be synced."""


class ValueRejected(TableError):
    """A source value that PostgreSQL cannot hold as mapped."""


class ChangedOnTheWay(TableError):  # noqa: N818 - what happened, told to the user
    """MySQL warned while reading: a value was changed (truncated, NULLed, a character replaced)."""


class FileError(ItemError):
    """A remote file could not be loaded, deleted or archived."""


class TransferError(FileError):
    """Listing, reading, deleting or moving a remote file failed; the connection may be gone."""


class LockWaitTimeout(ItemError):
    """A statement waited LOCK_TIMEOUT seconds for a lock held by another session."""


class LineRejected(DataSyncError):  # noqa: N818 - a verdict on one line, kept in the rejects table
    """This log line cannot be parsed; the message says why."""


class Interrupted(DataSyncError):
    """The process was asked to stop (SIGTERM or SIGINT).

    ``received`` keeps the reason once a signal arrived: a driver that calls back into
    Python (psycopg2's COPY reading our chunks), or a statement cancelled because of the
    signal, may surface as the driver's own error first.
    """

    exit_code = EXIT_INTERRUPTED
    received = None
