"""Settings of mysql_sync_service.py: the MySQL source, table selection and per-table modes."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .common import CommonSettings, PostgresSettings, read_common, read_postgres
from .reader import Reader, Secret, read_environment

MODES = ("diff", "incremental", "full", "append", "skip")
MODE_RE = re.compile(r"^(diff|incremental|full|append|skip)(?::(.+))?$")


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

    mode: str  # diff, incremental, full, append, skip
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
    sync_modes: dict       # MYSQL_SYNC_MODES: {glob: TableMode}
    skip_deletes: tuple
    tinyint1_as_boolean: bool
    adopt_tables: tuple
    drop_gone_tables: bool

    def selects(self, table):
        """True when ``table`` matches MYSQL_TABLES and not MYSQL_EXCLUDE_TABLES."""
        return matches(table, self.tables) and not matches(table, self.exclude_tables)

    def mode_for(self, table):
        for pattern, mode in self.sync_modes.items():
            if fnmatch.fnmatchcase(table, pattern):
                return mode
        return None

    def propagates_deletes(self, table):
        return not matches(table, self.skip_deletes)

    def adopts(self, table):
        return matches(table, self.adopt_tables)


def matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


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


def parse_modes(r: Reader) -> dict:
    """MYSQL_SYNC_MODES: ``table=mode[:column]`` items, tables may be globs."""
    modes = {}
    for item in r.list("MYSQL_SYNC_MODES"):
        table, sep, spec = item.partition("=")
        match = MODE_RE.match(spec.strip()) if sep else None
        if not table.strip() or not match or (match.group(2) and match.group(1) not in ("incremental", "append")):
            r.fail("MYSQL_SYNC_MODES", f"item {item!r} is not table=diff, table=incremental[:column], "
                   "table=append[:column], table=full or table=skip")
            continue
        modes[table.strip()] = TableMode(match.group(1), match.group(2))
    return modes


def check_target_schema(r: Reader, target, state_schema):
    """The copies may not land beside the state tables or the log tables (they could replace them)."""
    if not target:
        return
    if target == state_schema:
        r.fail("MYSQL_TARGET_SCHEMA", f"must differ from DATASYNC_STATE_SCHEMA ({state_schema}): "
               "MySQL tables would sit beside the state tables")
    logs = r.str("FTP_TARGET_SCHEMA")
    if target == logs:
        r.fail("MYSQL_TARGET_SCHEMA", f"must differ from FTP_TARGET_SCHEMA ({logs}), the schema of the log tables; "
               "set MYSQL_TARGET_SCHEMA (its default is MYSQL_DB in lower case)")


def load_mysql_sync(environ=None) -> MysqlSyncSettings:
    """Read and validate everything mysql_sync_service.py needs."""
    r = Reader(read_environment(environ))
    postgres, mysql = read_postgres(r), read_mysql(r)
    target = r.str("MYSQL_TARGET_SCHEMA") or (mysql.db or "").lower()
    check_target_schema(r, target, postgres.state_schema)
    settings = MysqlSyncSettings(
        common=read_common(r),
        postgres=postgres,
        mysql=mysql,
        tables=r.list("MYSQL_TABLES") or ("*",),
        exclude_tables=r.list("MYSQL_EXCLUDE_TABLES"),
        target_schema=target,
        cursor_columns=r.list("MYSQL_CURSOR_COLUMNS"),
        lookback_seconds=r.int("MYSQL_LOOKBACK_SECONDS", 0, 10**9),
        sync_modes=parse_modes(r),
        skip_deletes=r.list("MYSQL_SKIP_DELETES"),
        tinyint1_as_boolean=r.bool("MYSQL_TINYINT1_AS_BOOLEAN"),
        adopt_tables=r.list("MYSQL_ADOPT_TABLES"),
        drop_gone_tables=r.bool("MYSQL_DROP_GONE_TABLES"),
    )
    r.done()
    return settings
