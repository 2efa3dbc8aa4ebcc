"""The PostgreSQL side: connections, identifiers, COPY, advisory locks."""

from __future__ import annotations

import hashlib
import logging

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from .errors import ConfigError, Interrupted
from .report import one_line
from .retry import with_retries

log = logging.getLogger(__name__)

MAX_IDENTIFIER_BYTES = 63
LOCK_NAMESPACE = 0x44530000  # "DS": first key of every advisory lock this project takes


REFUSED = ("password authentication failed", "authentication failed for user", "no pg_hba.conf entry",
           "does not exist", "permission denied for database", "password is required")


def connect(pg, common, application_name="datasync"):
    """Open a psycopg2 connection (autocommit off) with bounded retries.

    Every session waits at most LOCK_TIMEOUT for a lock, and prints dates as ISO.  A login or
    database the server refuses is a ConfigError at once (exit 2), not retried like an outage.
    """
    params = dict(host=pg.host, port=pg.port, dbname=pg.db, user=pg.user,
                  password=pg.password.value or None, sslmode=pg.sslmode,
                  connect_timeout=common.connect_timeout, application_name=application_name,
                  keepalives=1, keepalives_idle=30,
                  options=f"-c lock_timeout={common.lock_timeout * 1000} -c DateStyle=ISO,MDY")
    if pg.sslrootcert:
        params["sslrootcert"] = pg.sslrootcert
    what = f"PostgreSQL at {pg.host}:{pg.port} (database {pg.db}, user {pg.user})"

    def refused(exc):
        reason = one_line(exc)
        if any(text in reason for text in REFUSED):
            return ConfigError(f"{what} refused the connection: {reason}")
        return None

    conn = with_retries(lambda: psycopg2.connect(**params), what, common, psycopg2.OperationalError, refused)
    if conn.server_version >= 140000:  # a killed client's statement stops within a second, not at its end
        with conn.cursor() as cur:
            cur.execute("SET client_connection_check_interval = '1s'")
        conn.commit()
    return conn


def server_version(conn):
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    conn.rollback()
    return version


def pg_name(name: str) -> str:
    """Fold to lower case; shorten names over 63 bytes deterministically.

    A long name keeps its first bytes (cut on a character boundary) and ends in ``_``
    plus the first 8 hex digits of the SHA-1 of the full folded name, 63 bytes in all.
    """
    return shorten(name.lower())


def shorten(name: str) -> str:
    raw = name.encode("utf-8")
    if len(raw) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    head = raw[: MAX_IDENTIFIER_BYTES - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


def ident(*parts):
    """A quoted (possibly schema-qualified) identifier."""
    return sql.Identifier(*parts)


def create_schema(cur, schema):
    """CREATE SCHEMA only when missing (IF NOT EXISTS still needs the CREATE privilege)."""
    cur.execute("SELECT to_regnamespace(%s) IS NULL", (sql.Identifier(schema).as_string(cur),))
    if cur.fetchone()[0]:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))


def lock_key(name: str) -> int:
    """A stable 32-bit signed key for an advisory lock on ``name``."""
    value = int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big")
    return value - (1 << 32) if value >= 1 << 31 else value


def try_lock(conn, name):
    """Take a session-level advisory lock; False when another session holds it."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key(name)))
        got = cur.fetchone()[0]
    conn.commit()
    return got


def try_xact_lock(conn, name):
    """Take a transaction-level advisory lock in the open transaction: a commit or a rollback
    releases it, so no path can end a table's work holding it (or commit to release it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, lock_key(name)))
        return cur.fetchone()[0]


class ChunkReader:
    """A file-like object over an iterator of byte chunks, for ``copy_expert``.

    psycopg2 turns an exception raised inside ``read()`` into its own generic error;
    the reader keeps the original so that ``copy_in`` can re-raise it (a SIGTERM stays
    an Interrupted, a dropped MySQL connection stays a MySQL error).
    """

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.error = None

    def read(self, size=-1):
        try:
            return next(self.chunks, b"")
        except BaseException as exc:
            self.error = self.error or exc  # the first failure is the cause
            raise

    readline = read


def copy_in(conn, table_sql, columns, chunks, options=""):
    """COPY byte chunks of COPY text into ``table_sql`` (a sql.Composable) in the open transaction."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN {}").format(
        table_sql, sql.SQL(", ").join(ident(c) for c in columns), sql.SQL(options))
    reader = ChunkReader(chunks)
    with conn.cursor() as cur:
        try:
            cur.copy_expert(statement, reader, size=1 << 20)
        except psycopg2.Error:
            if reader.error is not None:
                raise reader.error from None
            if Interrupted.received:  # the signal arrived outside read()'s try, in psycopg2's callback
                raise Interrupted(Interrupted.received) from None
            raise
        return cur.rowcount


def is_connection_error(exc):
    """True for errors that mean the connection is gone rather than the statement failed: a server error
    of class 08 or 57P (shut down, crashed), or a driver error without SQLSTATE (the socket broke).
    A lock timeout or a cancelled statement is an OperationalError too, but the connection lives."""
    code = getattr(exc, "pgcode", None) or ""
    if code:
        return code.startswith(("08", "57P"))
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


def usable(conn):
    """False when the connection is closed or broken (its transaction status is unknown)."""
    return not conn.closed and conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN


def lock_wait(monitor, pid):
    """What backend ``pid`` waits for and who holds it, in one line; None when it waits for no lock."""
    with monitor.cursor() as cur:
        cur.execute(
            "SELECT (SELECT string_agg(DISTINCT coalesce(relation::regclass::text, locktype), ', ') FROM pg_locks "
            "WHERE pid = %(pid)s AND NOT granted), b.pid, b.application_name, b.state, "
            "left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 120) "
            "FROM pg_stat_activity b WHERE b.pid = ANY(pg_blocking_pids(%(pid)s)) LIMIT 1", {"pid": pid})
        row = cur.fetchone()
    if row is None:
        return None
    what, holder, application, holder_state, query = row
    return (f"PostgreSQL: waiting for a lock on {what or 'a row'} held by pid {holder} "
            f"({application or 'no application name'}, {holder_state}): {query}")
