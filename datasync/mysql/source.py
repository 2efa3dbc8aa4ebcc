"""The MySQL side: connection, catalogue reading, consistent snapshots, streaming reads."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pymysql
import pymysql.converters
import pymysql.cursors
from pymysql.constants import FIELD_TYPE

from ..errors import ChangedOnTheWay, ConfigError, ConnectionLost, DataSyncError, LockWaitTimeout, TableError
from ..report import one_line
from ..retry import with_retries
from .types import q

log = logging.getLogger(__name__)

# Known session state: UTC, utf8mb4, backslash escapes on (types.py relies on it),
# long write timeout so a slow PostgreSQL never makes MySQL drop a streaming read.
SESSION_SETUP = (
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
    "SET SESSION net_write_timeout = 3600",
    "SET SESSION net_read_timeout = 3600",
    "SET SESSION group_concat_max_len = 1073741824",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
)
FETCH_ROWS = 5000
# values arrive as bytes (use_unicode=False): PyMySQL's DECIMAL converter expects str
CONVERSIONS = {**pymysql.converters.conversions,
               **{t: (lambda b: Decimal(b.decode())) for t in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL)}}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    column_type: str
    nullable: bool
    precision: int | None = None
    scale: int | None = None
    datetime_precision: int | None = None
    char_length: int | None = None
    extra: str = ""
    is_json: bool = False
    charset: str | None = None  # of a text column

    @property
    def on_update_timestamp(self):
        return "on update" in self.extra.lower() and self.data_type in ("timestamp", "datetime")

    def with_json(self):
        return replace(self, is_json=True)


@dataclass(frozen=True)
class Index:
    name: str
    unique: bool
    columns: tuple  # of (column name, prefix length or None)
    kind: str = "BTREE"


@dataclass
class SourceTable:
    name: str
    columns: list = field(default_factory=list)
    indexes: list = field(default_factory=list)

    @property
    def primary_key(self):
        for index in self.indexes:
            if index.name == "PRIMARY":
                return tuple(c for c, _ in index.columns)
        return ()

    @property
    def row_key(self):
        """The columns that identify a row: the primary key, else a unique key of NOT NULL columns."""
        if self.primary_key:
            return self.primary_key
        for index in sorted(self.indexes, key=lambda i: (len(i.columns), i.name)):
            columns = [c for c, _ in index.columns]
            if (index.unique and index.kind == "BTREE" and all(c is not None and p is None for c, p in index.columns)
                    and all(not self.column(c).nullable for c in columns)):
                return tuple(columns)
        return ()

    def column(self, name):
        return next(c for c in self.columns if c.name == name)


LOST = {2006, 2013, 2055, 1927, 4031}  # server gone, connection lost, MariaDB "connection killed", idle timeout
REFUSED = {1044, 1045, 1049, 1251, 1698}  # access denied (to the server, to the database), unknown database
VANISHED = {1054, 1146}  # unknown column / table: changed in MySQL while this run read it
LOCK_WAIT_TIMEOUT = 1205
UNKNOWN_TABLE = 1109  # in information_schema (MySQL 5.7 has no CHECK_CONSTRAINTS)


def error_code(exc):
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def translate(exc, what=None):
    """A PyMySQL error as this project's exception (the one place they are translated)."""
    code, reason = error_code(exc), one_line(exc)
    if isinstance(exc, pymysql.err.InterfaceError) or code in LOST:
        return ConnectionLost(f"MySQL connection lost: {reason}")
    if code == LOCK_WAIT_TIMEOUT:
        return LockWaitTimeout(f"{what or 'MySQL'}: waited LOCK_TIMEOUT for a MySQL lock another session holds "
                               f"(a metadata lock: ALTER TABLE, LOCK TABLES or a long transaction on the table): "
                               f"{reason}")
    if code in VANISHED:
        return TableError(f"{what or 'MySQL'}: the table changed in MySQL while it was read ({reason}); "
                          "the next run reads its new structure")
    return TableError(f"{what}: MySQL: {reason}" if what else f"MySQL: {reason}")


class MySQLSource:
    """One connection to the source database; values arrive as bytes (no decoding cost).

    Every PyMySQL error leaves this class translated (``translate``).  ``cancel`` (a stop hook)
    kills the statement in flight from a second connection, so neither a signal nor an
    abandoned read leaves a query running on the server.
    """

    def __init__(self, settings, common):
        self.settings, self.common = settings, common
        self.conn = None
        self.busy = False   # a statement is in flight on self.conn
        self.max_packet = 0  # the server's max_allowed_packet: the largest row it can send
        self.monitor = None  # a second connection for the lock probe, opened when a statement runs long

    def connect(self):
        self.conn = self._open()
        for statement in SESSION_SETUP + (f"SET SESSION lock_wait_timeout = {self.common.lock_timeout}",):
            self.execute(statement)
        self.max_packet = int(self.execute("SELECT @@max_allowed_packet")[0][0])
        return self

    def _open(self, common=None):
        s, common = self.settings, common or self.common
        ssl = None
        if s.ssl_ca or s.ssl_cert:
            ssl = {k: v for k, v in (("ca", s.ssl_ca), ("cert", s.ssl_cert), ("key", s.ssl_key)) if v}
        what = f"MySQL at {s.host}:{s.port} (database {s.db}, user {s.user})"

        def refused(exc):
            if error_code(exc) in REFUSED:
                return ConfigError(f"{what} refused the connection: {one_line(exc)}")
            return None

        return with_retries(lambda: pymysql.connect(
            host=s.host, port=s.port, user=s.user, password=s.password.value, database=s.db,
            charset="utf8mb4", use_unicode=False, ssl=ssl, connect_timeout=common.connect_timeout,
            cursorclass=pymysql.cursors.SSCursor, autocommit=True, conv=CONVERSIONS,
        ), what, common, pymysql.err.OperationalError, refused)

    def close(self):
        if self.conn is not None:
            if self.busy:
                self.cancel()
            _quietly_close(self.conn)
            self.conn = None
            self.busy = False
        if self.monitor is not None:
            _quietly_close(self.monitor)
            self.monitor = None

    def reconnect(self):
        self.close()
        return self.connect()

    def cancel(self):
        """Kill the statement in flight (if any) from a second connection; its caller gets an error."""
        conn = self.conn
        if conn is None or not self.busy:
            return
        try:
            thread_id = conn.thread_id()
            killer = self._open(replace(self.common, connect_retries=1))
            try:
                with killer.cursor(pymysql.cursors.Cursor) as cur:
                    cur.execute("KILL QUERY %s", (thread_id,))
            finally:
                _quietly_close(killer)
        except (pymysql.Error, DataSyncError, OSError):
            log.debug("could not kill the running MySQL statement", exc_info=True)

    def waiting(self):
        """Lock probe: what the statement in flight waits for (a metadata or row lock), or None."""
        conn = self.conn
        if conn is None or not self.busy:
            return None
        if self.monitor is None or not self.monitor.open:
            self.monitor = self._open(replace(self.common, connect_retries=1))
        with self.monitor.cursor(pymysql.cursors.Cursor) as cur:
            cur.execute("SELECT STATE, TIME, LEFT(INFO, 80) FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (conn.thread_id(),))
            row = cur.fetchone()
        if not row or "lock" not in _text(row[0] or "").lower():
            return None
        return (f"MySQL: {_text(row[0]).lower()} (another session is altering or locking the table, or holds a "
                f"transaction on it), for {row[1]}s now: {_text(row[2])}")

    def execute(self, statement, args=None, what=None, warnings=False):
        """Run a statement and return all rows, decoded to str where they are bytes."""
        return [tuple(_text(v) for v in row) for row in self.execute_raw(statement, args, what, warnings)]

    def execute_raw(self, statement, args=None, what=None, warnings=False):
        """Run a statement and return all rows as the driver gives them (text as bytes); a warning
        fails it (MySQL changed a value) unless ``warnings`` are expected (a diagnostic query)."""
        self.busy = True
        try:
            with self.conn.cursor(pymysql.cursors.Cursor) as cur:
                cur.execute(statement, args)
                rows = cur.fetchall()
                if cur.warning_count and not warnings:
                    self._refuse_warnings(what)
                return rows
        except pymysql.Error as exc:
            raise translate(exc, what) from exc
        except BaseException:  # interrupted while the server works on it: stop the statement there too
            self.cancel()
            raise
        finally:
            self.busy = False

    def _refuse_warnings(self, what):
        """MySQL warns when it changed a value on the way (a result too large, a character it could not
        convert): the data is not exact, so the table fails, saying what MySQL said."""
        with self.conn.cursor(pymysql.cursors.Cursor) as cur:
            cur.execute("SHOW WARNINGS LIMIT 3")
            warnings = "; ".join(f"{_text(level)} {code}: {_text(message)}" for level, code, message in cur.fetchall())
        raise ChangedOnTheWay(f"{what}: MySQL changed values while reading them, so the copy would not be "
                              f"exact: {warnings}")

    def start(self, statement):
        """Run a small query on this connection in the background (see Pending)."""
        return Pending(self, statement)

    def version(self):
        return self.execute("SELECT VERSION()")[0][0]

    @staticmethod
    def is_mysql8(version):
        """MySQL 8.0 or later (not MariaDB, whose versions run 10.x, 11.x)."""
        major = version.split(".")[0]
        return "mariadb" not in version.lower() and major.isdigit() and int(major) >= 8

    def stream(self, statement, args=None, what=None):
        """Yield rows of a SELECT without buffering the result (server-side cursor).

        A read that stops early (error, or the consumer gave up) kills the statement and closes
        the connection rather than draining the rest of the result; the caller reconnects.
        """
        conn = self.conn
        cur = conn.cursor()
        self.busy = True
        try:
            cur.execute(statement, args)
            while rows := cur.fetchmany(FETCH_ROWS):
                yield rows
            if cur.warning_count:
                self._refuse_warnings(what)
        except BaseException as exc:
            # PyMySQL's SSCursor.close() would read on (or crash on) a dead socket.  This may
            # run late, when the abandoned generator is collected: close only our connection.
            _abandon(cur)
            if self.conn is conn:
                self.close()
            else:
                _quietly_close(conn)
            if isinstance(exc, pymysql.Error):
                raise translate(exc, what) from exc
            raise
        finally:
            if self.conn is conn:
                self.busy = False
        cur.close()

    def begin_snapshot(self):
        self.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def end_snapshot(self):
        if self.conn is not None and self.conn.open:
            self.execute("COMMIT")

    # --- catalogue ------------------------------------------------------------------

    def base_tables(self):
        rows = self.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME", (self.settings.db,))
        return [r[0] for r in rows]

    def describe(self, names):
        """Columns and indexes of the named tables, read in two catalogue queries."""
        tables = {n: SourceTable(n) for n in names}
        if not tables:
            return tables
        json_columns = self._json_check_columns()
        for row in self.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, "
                "NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, EXTRA, CHARACTER_SET_NAME "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
                (self.settings.db,)):
            table, name, data_type, column_type, nullable, prec, scale, dtp, clen, extra, charset = row
            if table in tables:
                tables[table].columns.append(Column(
                    name, data_type.lower(), column_type.lower(), nullable == "YES", _int(prec), _int(scale),
                    _int(dtp), _int(clen), extra or "", (table, name) in json_columns, charset))
        self._read_indexes(tables)
        return tables

    def _read_indexes(self, tables):
        grouped = {}
        for table, index, non_unique, column, sub_part, kind in self.execute(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", (self.settings.db,)):
            if table in tables:
                entry = grouped.setdefault((table, index), [str(non_unique) == "0", [], kind])
                entry[1].append((column, _int(sub_part)))
        for (table, index), (unique, columns, kind) in grouped.items():
            tables[table].indexes.append(Index(index, unique, tuple(columns), kind or "BTREE"))

    def _json_check_columns(self):
        """MariaDB stores JSON as LONGTEXT with a json_valid() check; find those columns (MySQL has a JSON
        type, and its CHECK_CONSTRAINTS has no TABLE_NAME)."""
        if "mariadb" not in self.version().lower():
            return set()
        try:
            rows = self.execute(
                "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = %s", (self.settings.db,))
        except TableError as exc:  # MySQL 5.7 has no CHECK_CONSTRAINTS (and no CHECKs): anything else is real
            if error_code(exc.__cause__) not in (UNKNOWN_TABLE, 1146):
                raise
            return set()
        found = set()
        for table, clause in rows:
            clause = clause.strip()
            if clause.lower().startswith("json_valid(`") and clause.endswith("`)"):
                found.add((table, clause[len("json_valid(`"):-2].replace("``", "`")))
        return found

    def find_rejected(self, table, key, predicate, where=""):
        """The primary key (or first columns) of one row matching ``predicate``, as text."""
        columns = key or ()
        select = ", ".join(q(c) for c in columns) or "1"
        condition = f"({predicate})" + (f" AND ({where})" if where else "")
        rows = self.execute(f"SELECT {select} FROM {q(table)} WHERE {condition} LIMIT 1",
                            what=f"table {table!r}: looking for the bad value", warnings=True)
        if not rows:
            return None
        return ", ".join(f"{c}={v}" for c, v in zip(columns, rows[0])) if columns else "(table has no key)"


class Pending:
    """A query running on the source's connection in a daemon thread, inside its snapshot.

    Lets MySQL compute a digest while the main thread merges in PostgreSQL.  result() waits for
    the rows.  The source counts as busy meanwhile, so a stop signal kills the query.  abandon()
    (the table failed first) kills the query and takes the connection away from the source, so
    nothing else talks on it; the thread closes it when its query has ended.
    """

    def __init__(self, source, statement):
        self.source, self.conn, self.statement = source, source.conn, statement
        self.rows = self.error = None
        self.lock = threading.Lock()
        source.busy = True
        self.thread = threading.Thread(target=self._run, name="mysql-query", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            with self.conn.cursor(pymysql.cursors.Cursor) as cur:
                cur.execute(self.statement)
                self.rows = cur.fetchall()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread by result()
            self.error = exc
        with self.lock:
            if self.source.conn is self.conn:
                self.source.busy = False
            else:
                _quietly_close(self.conn)

    def result(self):
        self.thread.join()
        if isinstance(self.error, pymysql.Error):
            raise translate(self.error) from self.error
        if self.error is not None:
            raise self.error
        return self.rows

    def abandon(self):
        with self.lock:
            if self.thread.is_alive() and self.source.conn is self.conn:
                self.source.cancel()
                self.source.conn, self.source.busy = None, False


def _abandon(cur):
    """Forget an unfinished result, so that PyMySQL's clean-up does not read on a closed socket."""
    result = getattr(cur, "_result", None)
    if result is not None:
        result.unbuffered_active = False
    cur.connection = None


def _quietly_close(conn):
    try:
        conn.close()
    except pymysql.Error:
        pass


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def _int(value):
    return None if value is None else int(value)
