"""Run history, per-table watermarks and the FTP file ledger, kept in PostgreSQL.

All of it lives in one schema (DATASYNC_STATE_SCHEMA, default ``datasync``):

- ``runs``         one row per run of either service, with per-table/per-file results (jsonb)
- ``mysql_tables`` per copied table: mode, cursor column, watermark, last result; for diff mode the
                   digest signature and bucket count, for the delete check the digest of the key set
- ``mysql_buckets`` diff mode: per table and bucket, the row count and digest of what PostgreSQL holds
- ``ftp_files``    per remote file (keyed by server and path): size, mtime, head fingerprint,
                   bytes loaded, counts, status, deletion

Watermarks and ledger rows are written inside the same transaction as the data they
describe, so they can never run ahead of (or behind) what PostgreSQL holds.
"""

from __future__ import annotations

import json
import os
import socket

from psycopg2 import sql
from psycopg2.extras import Json, RealDictCursor

from .postgres import LOCK_NAMESPACE, create_schema, ident, lock_key

DDL = """
CREATE TABLE IF NOT EXISTS {schema}.runs (
    id          bigserial PRIMARY KEY,
    service     text NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    backend_pid integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running',
    exit_code   integer,
    details     jsonb NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS {schema}.mysql_tables (
    source_db     text NOT NULL,
    source_table  text NOT NULL,
    target_schema text NOT NULL,
    target_table  text NOT NULL,
    mode          text NOT NULL,
    cursor_column text,
    watermark     text,
    last_run_id   bigint,
    last_success  timestamptz,
    last_status   text,
    last_error    text,
    rows_inserted bigint, rows_updated bigint, rows_deleted bigint, zero_dates bigint,
    seconds       double precision,
    PRIMARY KEY (source_db, source_table)
);
CREATE TABLE IF NOT EXISTS {schema}.ftp_files (
    source        text NOT NULL,
    remote_path   text NOT NULL,
    version       integer NOT NULL DEFAULT 1,
    format        text,
    size          bigint NOT NULL,
    mtime         timestamptz,
    head_sha256   text NOT NULL,
    head_length   integer NOT NULL,
    offset_loaded bigint NOT NULL,
    lines_loaded  bigint NOT NULL DEFAULT 0,
    lines_rejected bigint NOT NULL DEFAULT 0,
    next_line_no  bigint NOT NULL DEFAULT 1,
    header        text,
    status        text NOT NULL,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_loaded   timestamptz,
    last_run_id   bigint,
    deleted_at    timestamptz,
    archived_to   text,
    last_error    text,
    PRIMARY KEY (source, remote_path)
);
ALTER TABLE {schema}.mysql_tables
    ADD COLUMN IF NOT EXISTS signature text,
    ADD COLUMN IF NOT EXISTS buckets integer,
    ADD COLUMN IF NOT EXISTS key_rows bigint,
    ADD COLUMN IF NOT EXISTS key_digest bigint,
    ADD COLUMN IF NOT EXISTS rows_compared bigint,
    ADD COLUMN IF NOT EXISTS bucket_width bigint;
CREATE TABLE IF NOT EXISTS {schema}.mysql_buckets (
    source_db     text NOT NULL,
    source_table  text NOT NULL,
    bucket        bigint NOT NULL,
    row_count     bigint NOT NULL,
    digest        bigint NOT NULL,
    PRIMARY KEY (source_db, source_table, bucket)
);
"""


NEWEST = ("mysql_tables", "bucket_width")  # the last column the DDL added: present means up to date


def ensure_schema(conn, schema):
    """Create the state schema (unless it exists: a role may lack CREATE on the database) and its
    tables, or add what an earlier version lacked; an advisory lock serialises replicas.  When the
    state is up to date nothing is locked (ALTER TABLE would wait behind every reader of the state)."""
    with conn.cursor() as cur:
        if is_current(cur, schema):
            conn.rollback()
            return
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, lock_key("state-ddl")))
        create_schema(cur, schema)
        cur.execute(sql.SQL(DDL).format(schema=ident(schema)))
    conn.commit()


def is_current(cur, schema):
    cur.execute("SELECT count(*) = 4 AND bool_or(c.relname = %s AND EXISTS (SELECT 1 FROM pg_attribute a "
                "WHERE a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped)) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND c.relname IN ('runs', 'mysql_tables', 'mysql_buckets', 'ftp_files') AND c.relkind = 'r'",
                (*NEWEST, schema))
    return cur.fetchone()[0]


def start_run(conn, schema, service):
    """Record a new run; close out runs whose process died (their backend is gone)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "UPDATE {}.runs SET status = 'aborted', finished_at = now() WHERE status = 'running' "
            "AND service = %s AND backend_pid NOT IN (SELECT pid FROM pg_stat_activity)"
        ).format(ident(schema)), (service,))
        cur.execute(sql.SQL(
            "INSERT INTO {}.runs (service, host, pid, backend_pid) VALUES (%s, %s, %s, pg_backend_pid()) "
            "RETURNING id").format(ident(schema)), (service, socket.gethostname(), os.getpid()))
        run_id = cur.fetchone()[0]
    conn.commit()
    return run_id


def finish_run(conn, schema, run_id, status, exit_code, details):
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "UPDATE {}.runs SET finished_at = now(), status = %s, exit_code = %s, details = %s WHERE id = %s"
        ).format(ident(schema)), (status, exit_code, Json(details, dumps=_dumps), run_id))
    conn.commit()


def _dumps(value):
    return json.dumps(value, default=str)


def recent_runs(conn, schema, service, limit=10):
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(sql.SQL(
            "SELECT id, started_at, finished_at, status, exit_code, host, "
            "round(extract(epoch FROM finished_at - started_at)::numeric, 1)::float AS seconds "
            "FROM {}.runs WHERE service = %s ORDER BY id DESC LIMIT %s").format(ident(schema)), (service, limit))
        rows = cur.fetchall()
    conn.rollback()
    return rows


def schema_exists(conn, schema):
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".runs',))
        found = cur.fetchone()[0]
    conn.rollback()
    return found


def get_table_state(conn, schema, source_db, source_table):
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(sql.SQL("SELECT * FROM {}.mysql_tables WHERE source_db = %s AND source_table = %s")
                    .format(ident(schema)), (source_db, source_table))
        return cur.fetchone()


def save_table_state(conn, schema, row):
    """Upsert one table's state, inside the caller's transaction."""
    _upsert(conn, schema, "mysql_tables", ("source_db", "source_table"), row)


def _upsert(conn, schema, table, key, row):
    columns = list(row)
    statement = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
        ident(schema), ident(table), sql.SQL(", ").join(map(ident, columns)),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)), sql.SQL(", ").join(map(ident, key)),
        sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(ident(c)) for c in columns if c not in key))
    with conn.cursor() as cur:
        cur.execute(statement, list(row.values()))


def record_table_failure(conn, schema, source_db, source_table, run_id, error, status="failed"):
    """Note a failed attempt (or a table gone from MySQL) without touching the watermark (own small transaction)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "UPDATE {}.mysql_tables SET last_status = %s, last_error = %s, last_run_id = %s "
            "WHERE source_db = %s AND source_table = %s").format(ident(schema)),
            (status, error, run_id, source_db, source_table))
    conn.commit()


def table_states(conn, schema, source_db):
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(sql.SQL("SELECT * FROM {}.mysql_tables WHERE source_db = %s ORDER BY source_table")
                    .format(ident(schema)), (source_db,))
        rows = cur.fetchall()
    conn.rollback()
    return rows


def file_states(conn, schema, source):
    """The ledger of one server: {remote_path: row}."""
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(sql.SQL("SELECT * FROM {}.ftp_files WHERE source = %s").format(ident(schema)), (source,))
        rows = {r["remote_path"]: r for r in cur.fetchall()}
    conn.rollback()
    return rows


def save_file_state(conn, schema, row):
    """Upsert one file's ledger row, inside the caller's transaction (the one holding its lines)."""
    _upsert(conn, schema, "ftp_files", ("source", "remote_path"), row)


def update_file_state(conn, schema, source, path, **values):
    """Change some columns of a file's ledger row in a transaction of its own."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {}.ftp_files SET {} WHERE source = %s AND remote_path = %s").format(
            ident(schema), sql.SQL(", ").join(sql.SQL("{} = %s").format(ident(c)) for c in values)),
            [*values.values(), source, path])
    conn.commit()


def recent_files(conn, schema, source, limit=50):
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(sql.SQL("SELECT * FROM {}.ftp_files WHERE source = %s "
                            "ORDER BY coalesce(deleted_at, last_loaded, first_seen) DESC, remote_path LIMIT %s")
                    .format(ident(schema)), (source, limit))
        rows = cur.fetchall()
    conn.rollback()
    return rows


def load_buckets(conn, schema, source_db, source_table):
    """{bucket: (rows, digest)} as stored for a diff-mode table (digests as unsigned 64-bit ints)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT bucket, row_count, digest FROM {}.mysql_buckets WHERE source_db = %s "
                            "AND source_table = %s").format(ident(schema)), (source_db, source_table))
        return {b: (rows, digest & MASK64) for b, rows, digest in cur.fetchall()}


def save_buckets(conn, schema, source_db, source_table, changed, current, replace_all=False):
    """Store the digests of the ``changed`` buckets (dropping those now empty), in the caller's transaction."""
    with conn.cursor() as cur:
        if replace_all:
            cur.execute(sql.SQL("DELETE FROM {}.mysql_buckets WHERE source_db = %s AND source_table = %s")
                        .format(ident(schema)), (source_db, source_table))
        gone = [b for b in changed if b not in current]
        if gone and not replace_all:
            cur.execute(sql.SQL("DELETE FROM {}.mysql_buckets WHERE source_db = %s AND source_table = %s "
                                "AND bucket = ANY(%s)").format(ident(schema)), (source_db, source_table, gone))
        rows = [(source_db, source_table, b, *current[b]) for b in changed if b in current]
        if rows:
            cur.execute(sql.SQL(
                "INSERT INTO {}.mysql_buckets (source_db, source_table, bucket, row_count, digest) "
                "SELECT %s, %s, b, r, d FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS u(b, r, d) "
                "ON CONFLICT (source_db, source_table, bucket) DO UPDATE SET row_count = EXCLUDED.row_count, "
                "digest = EXCLUDED.digest").format(ident(schema)),
                (source_db, source_table, [r[2] for r in rows], [r[3] for r in rows], [signed(r[4]) for r in rows]))


def drop_buckets(conn, schema, source_db, source_table):
    """Forget a table's diff digests (it left diff mode), in the caller's transaction."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {}.mysql_buckets WHERE source_db = %s AND source_table = %s").format(
            ident(schema)), (source_db, source_table))


def drop_table_state(conn, schema, source_db, source_table):
    """Forget a table (its copy was dropped), in the caller's transaction."""
    with conn.cursor() as cur:
        for table in ("mysql_buckets", "mysql_tables"):
            cur.execute(sql.SQL("DELETE FROM {}.{} WHERE source_db = %s AND source_table = %s").format(
                ident(schema), ident(table)), (source_db, source_table))


def owner_of(conn, schema, target_schema, target_table):
    """The (source_db, source_table) whose copy ``target_schema.target_table`` is, or None."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT source_db, source_table FROM {}.mysql_tables WHERE target_schema = %s "
                            "AND target_table = %s LIMIT 1").format(ident(schema)), (target_schema, target_table))
        return cur.fetchone()


MASK64 = (1 << 64) - 1


def signed(value):
    """An unsigned 64-bit digest as PostgreSQL's bigint."""
    value &= MASK64
    return value - (1 << 64) if value >= 1 << 63 else value
