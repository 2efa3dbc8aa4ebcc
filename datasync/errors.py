"""One exception tree for both services; each maps to a documented exit code.

    DataSyncError                      base of everything raised on purpose
    ├── ConfigError           exit 2   bad settings or command line (all problems in one message)
    ├── UnreachableError      exit 3   a server could not be reached after the retries
    ├── TableError            exit 1   one table (or file) failed; the others carry on
    │   └── ValueRejected              a value PostgreSQL cannot hold as mapped (names table, column, key)
    └── Interrupted           exit 143 SIGTERM/SIGINT: the open transaction rolls back

Driver errors (pymysql, psycopg2, paramiko, ftplib) are wrapped where they leave a
module, with ``raise ... from exc`` so the cause stays in debug logs.
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
    """Invalid settings or arguments; ``problems`` lists every one found."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class UnreachableError(DataSyncError):
    """A server did not answer (or refused the login) after bounded retries."""

    exit_code = EXIT_UNREACHABLE


class TableError(DataSyncError):
    """A single table or file failed; the run goes on with the others."""


class ValueRejected(TableError):
    """A source value that PostgreSQL cannot hold as mapped."""


class Interrupted(DataSyncError):
    """The process was asked to stop (SIGTERM or SIGINT).

    ``received`` keeps the reason once a signal arrived: a driver that calls back into
    Python (psycopg2's COPY reading our chunks) may replace the exception with its own.
    """

    exit_code = EXIT_INTERRUPTED
    received = None
