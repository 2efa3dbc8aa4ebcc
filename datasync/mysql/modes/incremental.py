"""Incremental mode: upsert rows changed since the watermark, then propagate deletes.

Rows whose cursor is at or after (watermark - MYSQL_LOOKBACK_SECONDS) are COPYed into a
temporary stage and merged on the primary key; unchanged rows are not rewritten, so the
counts are true inserts and updates.  Deletes: every MySQL primary key is streamed into a
temporary table and rows PostgreSQL has beyond them are deleted.
"""

from __future__ import annotations

import time

from psycopg2 import sql

from ...postgres import ident
from ..copy import Counts, copy_select, execute, table_ref
from ..plan import INTEGER_TYPES
from ..types import q

KEY_BATCH = 20000
STAGE = "_datasync_stage"
KEYS = "_datasync_keys"


def run(job, plan, existing, since=None):
    where, args = "", None
    if since is not None:
        cursor = q(plan.cursor)
        where = f"{cursor} >= TIMESTAMP(%s) - INTERVAL %s SECOND OR {cursor} IS NULL"
        args = (since, job.settings.lookback_seconds)
    execute(job, sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(ident(STAGE), table_ref(plan)))
    _, zeros = copy_select(job, plan, ident(STAGE), where=where, args=args)
    # MySQL counts its rows (same snapshot) while PostgreSQL merges: the delete check's first step
    counting = job.source.start(f"SELECT COUNT(*) FROM {q(plan.source.name)}") if plan.deletes else None
    try:
        inserted, updated = upsert(job, plan)
        deleted = delete_missing(job, plan, counting) if counting else 0
    except BaseException:
        if counting:
            counting.abandon()
        raise
    return Counts(inserted, updated, deleted, zeros)


def upsert(job, plan):
    """Merge the stage into the target; returns (inserted, updated)."""
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
    statement = sql.SQL(
        "WITH up AS (INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {stage} ON CONFLICT ({key}) {action} "
        "RETURNING (xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up").format(
            target=table_ref(plan), cols=sql.SQL(", ").join(cols), stage=ident(STAGE),
            key=sql.SQL(", ").join(key), action=action)
    return execute(job, statement)[0]


def delete_missing(job, plan, counting):
    """Delete target rows whose primary key MySQL no longer has (keys streamed, not held).

    After the merge PostgreSQL holds every MySQL row, so it has exactly (rows deleted in
    MySQL) more: equal counts prove there is nothing to delete and the key stream is skipped.
    """
    started = time.monotonic()
    pg_rows = execute(job, sql.SQL("SELECT count(*) FROM {}").format(table_ref(plan)))[0][0]
    mysql_rows = int(counting.result()[0][0])
    if pg_rows == mysql_rows:
        job.log.info("%s: delete check: %s rows on both sides, nothing deleted (%.2fs)", plan.label, pg_rows,
                     time.monotonic() - started)
        return 0
    if pg_rows < mysql_rows:
        job.log.warning("%s: PostgreSQL has %s rows, MySQL %s: rows changed outside the lookback window were "
                        "missed; raise MYSQL_LOOKBACK_SECONDS and run --full-refresh", plan.label, pg_rows, mysql_rows)
    key = [ident(k) for k in plan.pg_key()]
    execute(job, sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        ident(KEYS), sql.SQL(", ").join(key), table_ref(plan)))
    targets = [t for t in plan.columns if t.column in plan.key]
    batch = ""
    if len(plan.key) == 1 and plan.source.column(plan.key[0]).data_type in INTEGER_TYPES:
        batch = f"{q(plan.key[0])} DIV {KEY_BATCH}"  # 20,000 keys a row instead of one
    keys, _ = copy_select(job, plan, ident(KEYS), targets=targets, batch_by=batch)
    execute(job, sql.SQL("ANALYZE {}").format(ident(KEYS)))
    match = sql.SQL(" AND ").join(sql.SQL("k.{0} = t.{0}").format(k) for k in key)
    with job.pg.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} t WHERE NOT EXISTS (SELECT 1 FROM {} k WHERE {})").format(
            table_ref(plan), ident(KEYS), match))
        deleted = cur.rowcount
    job.log.info("%s: delete check over %s keys: %s deleted in %.2fs", plan.label, keys, deleted,
                 time.monotonic() - started)
    return deleted
