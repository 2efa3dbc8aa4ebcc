"""Incremental mode: upsert rows changed since the watermark, then propagate deletes.

Rows whose cursor is at or after (watermark - MYSQL_LOOKBACK_SECONDS), or NULL, are COPYed
into a temporary stage and merged on the primary key; unchanged rows are not rewritten, so
the counts are true inserts and updates.

Deletes: MySQL computes the digest of its key set (row count and the XOR of each key's 64-bit
hash, keys.py) in the same snapshot, while PostgreSQL merges.  The digest of the copy's key
set is kept in the state and updated with the keys each merge inserts; when the two digests
match, the key sets are equal and nothing was deleted.  Otherwise -- or when the key cannot
be hashed alike on both sides -- every MySQL key is streamed into a temporary table: rows
PostgreSQL has beyond them are deleted, and rows MySQL has that the copy lacks (a transaction
that committed later than the lookback window) are copied.  Equal row counts are never taken
as proof of equal key sets.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import reduce
from operator import xor

from psycopg2 import sql

from ... import state
from ...postgres import ident
from .. import keys
from ..copy import Counts, copy_keys, copy_select, execute, table_ref
from ..types import q

STAGE = "_datasync_stage"
KEYS = "_datasync_keys"
FETCH_KEYS = 1000  # missed rows fetched by key, this many per statement


def run(job, plan, step, previous):
    """Merge the rows changed since the watermark; returns (Counts, state columns to save)."""
    where, args = "", None
    if step.since is not None:
        cursor = q(plan.cursor)
        where = f"{cursor} >= TIMESTAMP(%s) - INTERVAL %s SECOND OR {cursor} IS NULL"
        args = (step.since, job.settings.lookback_seconds)
    execute(job, sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(ident(STAGE), table_ref(plan)))
    _, zeros = copy_select(job, plan, ident(STAGE), where=where, args=args)
    # MySQL digests its key set (same snapshot) while PostgreSQL merges: the delete check's first step
    counting = job.source.start(key_digest_sql(plan)) if plan.deletes else None
    try:
        inserted, updated, inserted_hashes = upsert(job, plan)
        if not counting:
            return Counts(inserted, updated, 0, zeros), {}
        deleted, state = delete_missing(job, plan, counting, previous, inserted, inserted_hashes)
    except BaseException:
        if counting:
            counting.abandon()
        raise
    return Counts(inserted, updated, deleted, zeros), state


def key_digest_sql(plan):
    """MySQL: (rows, XOR of key hashes) of the table, or (rows, NULL) when keys cannot be hashed alike."""
    digest = f"BIT_XOR(CAST({keys.mysql_key_hash(plan)} AS UNSIGNED))" if not keys.unsupported(plan) else "NULL"
    return f"SELECT COUNT(*), {digest} FROM {q(plan.source.name)}"


def key_state(rows, digest):
    """The state columns of a key-set digest (stored as PostgreSQL's signed bigint)."""
    return {"key_rows": rows, "key_digest": None if digest is None else state.signed(int(digest))}


def upsert(job, plan):
    """Merge the stage into the target; returns (inserted, updated, hashes of the inserted keys)."""
    cols = [ident(t.name) for t in plan.columns]
    key = [ident(k) for k in plan.pg_key()]
    rest = [ident(t.name) for t in plan.columns if t.name not in plan.pg_key()]
    if rest:
        action = sql.SQL("DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({})").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(c) for c in rest),
            sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in rest),
            sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in rest))
    else:
        action = sql.SQL("DO NOTHING")
    hashed = keys.pg_key_hash(plan, "t") if not keys.unsupported(plan) else sql.SQL("NULL::bigint")
    statement = sql.SQL(
        "WITH up AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({key}) {action} "
        "RETURNING (xmax = 0) AS inserted, {hashed} AS h) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), "
        "coalesce(array_agg(h) FILTER (WHERE inserted), '{{}}') FROM up").format(
            target=table_ref(plan), cols=sql.SQL(", ").join(cols), stage=ident(STAGE),
            key=sql.SQL(", ").join(key), action=action, hashed=hashed)
    return execute(job, statement)[0]


def delete_missing(job, plan, counting, previous, inserted, inserted_hashes):
    """Delete target rows whose key MySQL no longer has; copy rows MySQL has that the target lacks."""
    started = time.monotonic()
    mysql_rows, mysql_digest = counting.result()[0]
    mysql_rows = int(mysql_rows)
    if mysql_digest is not None and previous and previous.get("key_digest") is not None:
        pg_rows = previous["key_rows"] + inserted
        pg_digest = reduce(xor, (keys.unsigned(h) for h in inserted_hashes), keys.unsigned(previous["key_digest"]))
        if (pg_rows, pg_digest) == (mysql_rows, keys.unsigned(mysql_digest)):
            job.log.info("%s: delete check: the key sets match (%s keys, digest %016x): nothing deleted (%.2fs)",
                         plan.label, pg_rows, pg_digest, time.monotonic() - started)
            return 0, key_state(mysql_rows, mysql_digest)
    deleted, missed = compare_keys(job, plan)
    job.log.info("%s: delete check over %s keys: %s deleted in %.2fs", plan.label, mysql_rows, deleted,
                 time.monotonic() - started)
    if missed:
        job.log.warning("%s: %s row(s) MySQL has were missing in PostgreSQL (a transaction committed later than "
                        "MYSQL_LOOKBACK_SECONDS allows for); copied now", plan.label, missed)
    return deleted, key_state(mysql_rows, mysql_digest)


def compare_keys(job, plan):
    """Stream every MySQL key; delete the rows MySQL no longer has, copy those the target lacks."""
    key = [ident(k) for k in plan.pg_key()]
    execute(job, sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        ident(KEYS), sql.SQL(", ").join(key), table_ref(plan)))
    mysql_keys = copy_keys(job, plan, ident(KEYS))
    execute(job, sql.SQL("ANALYZE {}").format(ident(KEYS)))
    match = sql.SQL(" AND ").join(sql.SQL("k.{0} = t.{0}").format(k) for k in key)
    with job.pg.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {} k WHERE {})").format(
            table_ref(plan), ident(KEYS), match))
        deleted = cur.rowcount
    if execute(job, sql.SQL("SELECT count(*) FROM {}").format(table_ref(plan)))[0][0] == mysql_keys:
        return deleted, 0  # every key MySQL has is there: nothing was missed
    missing = execute(job, sql.SQL("SELECT {} FROM {} k WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE {})").format(
        sql.SQL(", ").join(sql.SQL("k.{}").format(k) for k in key), ident(KEYS), table_ref(plan), match))
    for start in range(0, len(missing), FETCH_KEYS):
        copy_missing(job, plan, missing[start:start + FETCH_KEYS])
    return deleted, len(missing)


def copy_missing(job, plan, rows):
    """Copy the MySQL rows with these keys (values as PostgreSQL returned them) into the target."""
    row = "(" + ", ".join(["%s"] * len(plan.key)) + ")"
    where = f"({', '.join(q(k) for k in plan.key)}) IN ({', '.join([row] * len(rows))})"
    copy_select(job, plan, table_ref(plan), where=where, args=[mysql_param(v) for r in rows for v in r])


def mysql_param(value):
    """A key value as PostgreSQL returned it, as a parameter MySQL compares exactly."""
    if isinstance(value, datetime) and value.tzinfo is not None:  # a TIMESTAMP: the MySQL session is in UTC
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    return value
