"""The read-only commands: --status, --dry-run and --verify.

--verify compares each table twice, in two independent ways, so that neither a fault of the
copy path nor one of the comparison can pass as "identical":
  1. the copy path: a fresh snapshot is loaded into a temporary table and both are compared
     by row count and per-chunk checksums of every value, computed by PostgreSQL;
  2. facts each server computes on its own from its own values, per chunk (the same key
     buckets as diff mode): row count, NULL count per column, byte length (text, bytes) or sum
     (integers, decimals) per column.  A value lost or changed on the way shows up here even
     if the export itself lost it.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from .. import postgres, runlog, state
from ..errors import EXIT_FAILED, EXIT_OK
from ..postgres import ident
from ..report import escape_controls, format_table, runs_table
from . import keys
from .copy import copy_select, describe_target, execute
from .job import connect, prepare, select_tables
from .plan import create_table_sql, decide, index_sql
from .types import GEOMETRY_TYPES, INT_TYPES, q

log = logging.getLogger("datasync.mysql")
CHUNKS = 64
LENGTH_TYPES = ("character varying", "text", "bytea")


def status(settings):
    """Print the last runs and every table's state from PostgreSQL."""
    pg = postgres.connect(settings.postgres, settings.common, "datasync status")
    schema = settings.postgres.state_schema
    try:
        if not state.schema_exists(pg, schema):
            print(f"no runs recorded yet (schema {schema} does not exist)")
            return EXIT_OK
        print(runs_table(state.recent_runs(pg, schema, "mysql_sync")))
        print()
        tables = state.table_states(pg, schema, settings.mysql.db)
        print(format_table(
            ["table", "target", "mode", "cursor", "watermark", "compared", "last success", "status", "ins", "upd",
             "del", "error"],
            [[escaped(v) for v in (
                t["source_table"], f'{t["target_schema"]}.{t["target_table"]}', t["mode"], t["cursor_column"],
                t["watermark"], compared(t), t["last_success"], t["last_status"], t["rows_inserted"],
                t["rows_updated"], t["rows_deleted"], t["last_error"])] for t in tables]))
        return EXIT_OK
    finally:
        pg.close()


def escaped(value):
    """A cell of --status: names, values and error texts from the servers with their control characters
    escaped, so none can split a row or start a line of its own."""
    return escape_controls(value) if isinstance(value, str) else value


def compared(t):
    """Diff mode: rows compared in buckets (what the last run checked)."""
    if t["mode"] != "diff" or t.get("rows_compared") is None:
        return None
    how = f"key ranges of {t['bucket_width']}" if t.get("bucket_width") else f"{t['buckets']} hash buckets"
    return f"{t['rows_compared']} rows, {how}"


def open_job(settings, full_refresh=False):
    """A job for a read-only command: a connection, but no record in the run history."""
    run = runlog.Run(settings, "mysql_sync", "datasync mysql_sync (read-only)")
    run.pg = run.connect()
    return connect(settings, run, full_refresh)


def dry_run(settings, tables=(), full_refresh=False):
    """Print what a run would do, with its DDL, and change nothing anywhere."""
    job = open_job(settings, full_refresh)
    results = []
    try:
        pg, schema = job.pg, settings.postgres.state_schema
        known = state.schema_exists(pg, schema)
        for plan in prepare(job, select_tables(job, tables), results):
            previous = state.get_table_state(pg, schema, settings.mysql.db, plan.source.name) if known else None
            existing = describe_target(pg, plan.schema, plan.table)
            step = decide(plan, previous, existing, full_refresh)
            pg.rollback()
            print(f"-- {plan.label} -> {plan.schema}.{plan.table}: {plan.mode} ({plan.reason}); this run: "
                  f"{describe_step(plan, step, settings)}")
            if existing is not None and previous is None:
                print(f"--   {plan.schema}.{plan.table} exists but was not created by this service: "
                      + ("MYSQL_ADOPT_TABLES takes it over" if settings.adopts(plan.source.name) else "left alone"))
            statements = step.ddl
            if step.action == "create":
                statements = [create_table_sql(plan)] + [s for s, _, skip in index_sql(plan) if not skip]
            for statement in statements:
                print(statement.as_string(pg) + ";")
        for r in results:
            print(f"-- {r.table}: {r.status}{': ' + r.error if r.error else ''}")
        return EXIT_OK if all(r.status != "failed" for r in results) else EXIT_FAILED
    finally:
        job.pg.rollback()
        job.pg.close()
        job.source.close()


def describe_step(plan, step, settings):
    if step.action == "create":
        return "create and load the table"
    if step.action == "reload":
        return f"reload every row in place ({step.reason})"
    if step.action == "diff":
        return ("compare every row (" + step.reason + ")" if step.rebuild else
                "compare bucket digests, re-read the buckets that changed")
    if step.since:
        return f"{step.action} from {step.since} minus {settings.lookback_seconds}s"
    return f"{step.action}, every row ({step.reason})"


def verify(settings, tables=()):
    """Compare each table with a fresh snapshot, by two independent methods; exit 1 on any difference."""
    job = open_job(settings)
    results, differ = [], []
    try:
        for plan in prepare(job, select_tables(job, tables), results):
            if describe_target(job.pg, plan.schema, plan.table) is None:
                differ.append(plan.label)
                log.error("%s: %s.%s does not exist in PostgreSQL", plan.label, plan.schema, plan.table)
                continue
            if not verify_locked(job, plan, settings):
                differ.append(plan.label)
        for row in state.table_states(job.pg, settings.postgres.state_schema, settings.mysql.db):
            if row["last_status"] == "gone":
                differ.append(row["source_table"])
                log.error("%s: gone from MySQL; its copy %s.%s is still there", row["source_table"],
                          row["target_schema"], row["target_table"])
        job.pg.rollback()
        failed = [r.table for r in results if r.status == "failed"]
        log.info("verify: %s table(s) differ%s", len(differ), f": {', '.join(differ)}" if differ else "")
        return EXIT_FAILED if differ or failed else EXIT_OK
    finally:
        job.pg.close()
        job.source.close()


def verify_locked(job, plan, settings):
    """Verify under the table's lock, waiting at most LOCK_TIMEOUT for a running sync of it."""
    try:
        execute(job, "SELECT pg_advisory_xact_lock(%s, %s)",
                (postgres.LOCK_NAMESPACE, postgres.lock_key(f"mysql:{plan.schema}.{plan.table}")))
        job.source.begin_snapshot()
        try:
            same_copy = verify_table(job, plan)
            same_facts = verify_facts(job, plan)
        finally:
            job.source.end_snapshot()
        return same_copy and same_facts
    except psycopg2.errors.LockNotAvailable:
        log.error("%s: not verified: a sync has held the table for LOCK_TIMEOUT (%ss)", plan.label,
                  settings.common.lock_timeout)
        return False
    finally:
        job.pg.rollback()


def verify_table(job, plan):
    """Load the snapshot into a temporary table and compare chunk checksums with the target."""
    fresh = "_datasync_verify"
    execute(job, sql.SQL("DROP TABLE IF EXISTS {}").format(ident("pg_temp", fresh)))
    execute(job, sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(ident(fresh), ident(plan.schema, plan.table)))
    copy_select(job, plan, ident("pg_temp", fresh))
    mysql_side = checksums(job, plan, ident("pg_temp", fresh))
    pg_side = checksums(job, plan, ident(plan.schema, plan.table))
    bad = sorted(b for b in set(mysql_side) | set(pg_side) if mysql_side.get(b) != pg_side.get(b))
    rows_my = sum(c for c, _ in mysql_side.values())
    rows_pg = sum(c for c, _ in pg_side.values())
    if bad:
        log.error("%s: differs: MySQL %s rows, PostgreSQL %s rows, %s of %s chunks differ", plan.label,
                  rows_my, rows_pg, len(bad), CHUNKS)
    else:
        log.info("%s: identical: %s rows, %s chunks", plan.label, rows_my, CHUNKS)
    return not bad


def checksums(job, plan, table):
    """{chunk: (rows, sum of 64-bit row hashes)}; chunks are buckets of the key's hash."""
    cols = sql.SQL(", ").join(ident(t.name) for t in plan.columns)
    key = sql.SQL(", ").join(ident(k) for k in plan.pg_key()) if plan.key else cols
    statement = sql.SQL(
        "SELECT abs(hashtext(ROW({key})::text)) % {n} AS chunk, count(*), "
        "sum(('x' || substr(md5(ROW({cols})::text), 1, 16))::bit(64)::bigint::numeric) "
        "FROM {table} GROUP BY 1").format(key=key, cols=cols, n=sql.Literal(CHUNKS), table=table)
    return {chunk: (count, total) for chunk, count, total in execute(job, statement)}


# ---------------------------------------------------------------- independent facts


def fact_columns(plan):
    """(target, kind) per column: kind 'length' (text, bytes), 'sum' (integers, decimals) or 'nulls'."""
    out = []
    for t in plan.columns:
        col = plan.source.column(t.column)
        base = t.mapping.pg_type.split("(")[0]
        if base in LENGTH_TYPES and col.data_type not in GEOMETRY_TYPES:
            out.append((t, "length"))
        elif col.data_type in (*INT_TYPES, "decimal", "year"):
            out.append((t, "sum"))
        else:
            out.append((t, "nulls"))
    return out


def mysql_facts_sql(plan):
    chunk = keys.Bucketing(CHUNKS).mysql(plan) if plan.key and not keys.unsupported(plan) else "0"
    parts = ["COUNT(*)"]
    for t, kind in fact_columns(plan):
        c = q(t.column)
        null = f"{c} IS NULL" + (f" OR {t.mapping.zero_date}" if t.mapping.zero_date else "")
        parts.append(f"SUM({null})")
        if kind == "length":
            value = c if t.mapping.pg_type == "bytea" else f"CONVERT({c} USING utf8mb4)"
            parts.append(f"SUM(LENGTH({value}))")
        elif kind == "sum":
            parts.append(f"SUM({c})")
    return f"SELECT {chunk}, {', '.join(parts)} FROM {q(plan.source.name)} GROUP BY 1"


def pg_facts_sql(plan):
    chunk = keys.Bucketing(CHUNKS).pg(plan, "t") if plan.key and not keys.unsupported(plan) else sql.SQL("0")
    parts = [sql.SQL("count(*)")]
    for t, kind in fact_columns(plan):
        c = sql.SQL("t.{}").format(ident(t.name))
        parts.append(sql.SQL("count(*) FILTER (WHERE {} IS NULL)").format(c))
        if kind == "length":
            parts.append(sql.SQL("sum(octet_length({}))").format(c))
        elif kind == "sum":
            parts.append(sql.SQL("sum({}{})").format(c, sql.SQL("::integer" if t.mapping.pg_type == "boolean"
                                                                 else "")))
    return sql.SQL("SELECT {}, {} FROM {} t GROUP BY 1").format(chunk, sql.SQL(", ").join(parts),
                                                               ident(plan.schema, plan.table))


def verify_facts(job, plan):
    """Compare the per-chunk facts MySQL and PostgreSQL each compute from their own values."""
    mysql_side = {int(r[0]): tuple(_number(v) for v in r[1:]) for r in job.source.execute(mysql_facts_sql(plan))}
    pg_side = {int(r[0]): tuple(_number(v) for v in r[1:]) for r in execute(job, pg_facts_sql(plan))}
    bad = sorted(b for b in set(mysql_side) | set(pg_side) if mysql_side.get(b) != pg_side.get(b))
    if bad:
        columns = ["rows"] + [f"{t.name} {what}" for t, kind in fact_columns(plan)
                              for what in (("NULLs",) + (("bytes",) if kind == "length" else ("sum",)
                                                         if kind == "sum" else ()))]
        first = bad[0]
        differing = [name for name, a, b in zip(columns, mysql_side.get(first, ()), pg_side.get(first, ()))
                     if a != b] or ["rows"]
        log.error("%s: differs: %s of %s chunks hold other facts in MySQL than in PostgreSQL (chunk %s: %s)",
                  plan.label, len(bad), len(set(mysql_side) | set(pg_side)), first, ", ".join(differing))
    return not bad


def _number(value):
    return 0 if value is None else Decimal(str(value))
