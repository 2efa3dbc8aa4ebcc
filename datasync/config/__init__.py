"""Settings: environment, then an optional ``.env`` file, then ``NAME_FILE`` values.

Every variable is declared once in ``variables.VARIABLES`` (name, default, meaning, jobs);
the README's configuration table and ``.env.example`` are checked against it by tests.
``load_mysql_sync`` and ``load_ftp_log`` read the variables their job needs, collect
*every* problem, and raise one ConfigError naming each variable.  The result is a frozen
dataclass tree whose attributes are named after their variables, in lower case and without
the group prefix (``FTP_MIN_FILE_AGE`` is ``settings.ftp.min_file_age``,
``MYSQL_LOOKBACK_SECONDS`` is ``settings.lookback_seconds``; ``FTP_PASS`` is ``password``).
Secrets are wrapped in ``Secret`` so that a repr, a log line or a traceback never shows them.
Any variable may instead be given as ``NAME_FILE`` (the path of a file holding the value):
Docker secrets, and the way start.sh hands cron a value that no cron line can carry exactly.

    variables.py  the registry            reader.py  environment, .env, NAME_FILE, validation
    common.py     PostgreSQL, logging     mysql.py   mysql_sync_service.py   ftp.py  ftp_log_service.py
"""

from .common import CommonSettings, PostgresSettings, load_logging
from .ftp import FtpLogSettings, FtpSettings, LogFormatSettings, load_ftp_log
from .mysql import MySQLSettings, MysqlSyncSettings, TableMode, load_mysql_sync
from .reader import Reader, Secret, read_environment
from .variables import JOBS, REQUIRED, VARIABLES, Variable, job_variables

__all__ = ["JOBS", "REQUIRED", "VARIABLES", "CommonSettings", "FtpLogSettings", "FtpSettings", "LogFormatSettings",
           "MySQLSettings", "MysqlSyncSettings", "PostgresSettings", "Reader", "Secret", "TableMode", "Variable",
           "job_variables", "load_ftp_log", "load_logging", "load_mysql_sync", "read_environment"]
