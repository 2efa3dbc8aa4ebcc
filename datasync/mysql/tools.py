"""The read-only commands: --status, --dry-run and --verify."""

from __future__ import annotations

import logging

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from .. import postgres, runlog, state
from ..errors import EXIT_FAILED, EXIT_OK
from ..postgres import ident
from ..report import format_table, runs_table
from .copy import copy_select, describe_target, execute
from .plan import create_table_sql, index_sql
from .sync import connect, decide, prepare, select_tables

log = logging.getLogger("datasync.mysql")
CHUNKS = 64


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
            ["table", "target", "mode", "cursor", "watermark", "last success", "status", "ins", "upd", "del",
             "error"],
            [[t["source_table"], f'{t["target_schema"]}.{t["target_table"]}', t["mode"], t["cursor_column"],
              t["watermark"], t["last_success"], t["last_status"], t["rows_inserted"], t["rows_updated"],
              t["rows_deleted"], t["last_error"]] for t in tables]))
        return EXIT_OK
    finally:
        pg.close()


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
            mode, since, statements = decide(job, plan, previous, existing)
            pg.rollback()
            print(f"-- {plan.label} -> {plan.schema}.{plan.table}: {plan.mode} ({plan.reason}); this run: {mode}"
                  + (f" from {since} minus {settings.lookback_seconds}s" if since else ""))
            if mode == "full":
                statements = [create_table_sql(plan, plan.table)] + [s for s, _, skip in index_sql(plan, plan.table)
                                                                     if not skip]
            for statement in statements:
                print(statement.as_string(pg) + ";")
        for r in results:
            print(f"-- {r.table}: {r.status}{': ' + r.error if r.error else ''}")
        return EXIT_OK if all(r.status != "failed" for r in results) else EXIT_FAILED
    finally:
        job.pg.rollback()
        job.pg.close()
        job.source.close()


def verify(settings, tables=()):
    """Compare each table with a fresh snapshot: row counts and per-chunk checksums."""
    job = open_job(settings)
    results, differ = [], []
    try:
        for plan in prepare(job, select_tables(job, tables), results):
            if describe_target(job.pg, plan.schema, plan.table) is None:
                differ.append(plan.label)
                log.error("%s: %s.%s does not exist in PostgreSQL", plan.label, plan.schema, plan.table)
                continue
            try:  # wait (at most LOCK_TIMEOUT) for a running sync of this table
                execute(job, "SELECT pg_advisory_xact_lock(%s, %s)",
                        (postgres.LOCK_NAMESPACE, postgres.lock_key(f"mysql:{plan.schema}.{plan.table}")))
                if not verify_table(job, plan):
                    differ.append(plan.label)
            except psycopg2.errors.LockNotAvailable:
                differ.append(plan.label)
                log.error("%s: not verified: a sync has held the table for LOCK_TIMEOUT (%ss)", plan.label,
                          settings.common.lock_timeout)
            finally:
                job.pg.rollback()
        failed = [r.table for r in results if r.status == "failed"]
        log.info("verify: %s table(s) differ%s", len(differ), f": {', '.join(differ)}" if differ else "")
        return EXIT_FAILED if differ or failed else EXIT_OK
    finally:
        job.pg.close()
        job.source.close()


def verify_table(job, plan):
    """Load a snapshot into a temporary table and compare chunk checksums with the target."""
    fresh = "_datasync_verify"
    execute(job, sql.SQL("DROP TABLE IF EXISTS {}").format(ident("pg_temp", fresh)))
    execute(job, create_table_sql(plan, fresh).as_string(job.pg).replace(
        ident(plan.schema, fresh).as_string(job.pg), ident("pg_temp", fresh).as_string(job.pg), 1))
    job.source.begin_snapshot()
    try:
        copy_select(job, plan, ident("pg_temp", fresh))
    finally:
        job.source.end_snapshot()
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
    """{chunk: (rows, sum of 64-bit row hashes)}; chunks are buckets of the primary key's hash."""
    cols = sql.SQL(", ").join(ident(t.name) for t in plan.columns)
    key = sql.SQL(", ").join(ident(k) for k in plan.pg_key()) if plan.key else cols
    statement = sql.SQL(
        "SELECT abs(hashtext(ROW({key})::text)) % {n} AS chunk, count(*), "
        "sum(('x' || substr(md5(ROW({cols})::text), 1, 16))::bit(64)::bigint::numeric) "
        "FROM {table} GROUP BY 1").format(key=key, cols=cols, n=sql.Literal(CHUNKS), table=table)
    return {chunk: (count, total) for chunk, count, total in execute(job, statement)}
