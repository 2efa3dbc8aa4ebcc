"""One run of the MySQL → PostgreSQL sync: plan every table, sync each in its own transaction.

Per table, in one PostgreSQL transaction: take its advisory lock (a table another run holds
is skipped), decide this run's step (plan.decide), open a consistent MySQL snapshot, let the
mode write, save the state (watermark, digests) beside the data, commit.  A failing table is
rolled back and recorded, and the run carries on; a lost connection is re-opened and the
table tried once more (runlog.Run.attempt).  A table the service did not create is never
touched unless MYSQL_ADOPT_TABLES names it; tables gone from MySQL are reported each run.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import psycopg2
from psycopg2 import sql

from .. import postgres, runlog, state
from ..errors import EXIT_FAILED, EXIT_OK, ItemError, TableError
from ..postgres import ident
from ..report import format_table
from .copy import ddl, describe_target, execute
from .job import Result, connect, prepare, select_tables
from .modes import append, diff, full, incremental
from .plan import Step, decide
from .types import q

log = logging.getLogger("datasync.mysql")
APPLICATION = "datasync mysql_sync"  # application_name in pg_stat_activity
MODES = {"incremental": incremental.run, "append": append.run, "diff": diff.run}
# Tables an earlier version swapped in (named "_datasync_new_" + 16 hex digits of a SHA-1); one killed mid-swap
# could leave one.  A regular expression, not LIKE: there "_" matches any character.
LEFTOVER = r"^_datasync_new_[0-9a-f]{16}$"


def run(settings, tables=(), full_refresh=False) -> int:
    """Sync every selected table; return the exit code (0 all ok, 1 a table failed)."""
    return runlog.run_job(settings, "mysql_sync", APPLICATION, lambda r: sync_all(r, settings, tables, full_refresh))


def sync_all(run, settings, tables, full_refresh):
    job = connect(settings, run, full_refresh)
    results = []
    try:
        present = job.source.base_tables()
        report_gone(job, present)
        clean_leftovers(job)
        for plan in prepare(job, select_tables(job, tables, present), results):
            results.append(sync_table(job, plan))
    finally:
        run.details = [r.as_dict() for r in results]
        job.source.close()
    report(results)
    return EXIT_OK if all(r.status in ("ok", "locked", "skipped") for r in results) else EXIT_FAILED


# ---------------------------------------------------------------- one table


class Locked(Exception):  # noqa: N818 - not an error: another run holds the table
    """Another run holds this table's advisory lock."""


def sync_table(job, plan) -> Result:
    """Sync one table; a lost connection is re-opened and the table tried once more; a failure is
    rolled back, recorded, and the run goes on."""
    started = time.monotonic()
    try:
        step, counts = job.run.attempt(plan.label, lambda: sync_once(job, plan), on_reconnect=job.source.reconnect)
    except Locked:
        log.info("%s: another run is syncing this table; skipped", plan.label)
        return Result(plan.label, plan.mode, "locked")
    except ItemError as exc:
        return failed(job, plan, str(exc), started)
    result = Result(plan.label, plan.mode, "ok", counts, time.monotonic() - started)
    log.info("%s: %s ok: %s inserted, %s updated, %s deleted, %s zero dates nulled in %.1fs",
             plan.label, "full" if step.action in ("reload", "create") else plan.mode, counts.inserted,
             counts.updated, counts.deleted, counts.zero_dates, result.seconds)
    return result


def failed(job, plan, error, started):
    log.error("%s: failed: %s", plan.label, error)
    try:
        state.record_table_failure(job.pg, job.state_schema, job.settings.mysql.db, plan.source.name,
                                   job.run_id, error)
    except psycopg2.Error:
        job.run.rollback()
        log.debug("could not record the failure of %s", plan.label, exc_info=True)
    job.source.reconnect()  # drop any half-read result and the snapshot
    return Result(plan.label, plan.mode, "failed", seconds=time.monotonic() - started, error=error)


def sync_once(job, plan):
    """One attempt, in one PostgreSQL transaction: lock, decide, copy inside a MySQL snapshot,
    save data and state together, commit.  Any exception leaves it to the caller's rollback."""
    started = time.monotonic()
    if not postgres.try_xact_lock(job.pg, f"mysql:{plan.schema}.{plan.table}"):
        raise Locked()
    previous = state.get_table_state(job.pg, job.state_schema, job.settings.mysql.db, plan.source.name)
    existing = describe_target(job.pg, plan.schema, plan.table)
    if existing is not None and previous is None:
        check_adoption(job, plan)
    step = decide(plan, previous, existing, job.full_refresh)
    postgres.create_schema(job.pg.cursor(), plan.schema)
    for statement in step.ddl:
        ddl(job, plan, statement)
    job.source.begin_snapshot()
    try:
        watermark = high_watermark(job, plan) if plan.cursor else None
        counts, extra = run_step(job, plan, step, previous)
    finally:
        job.source.end_snapshot()
    if watermark is None and previous and step.action not in ("create", "reload"):
        watermark = previous["watermark"]
    state.save_table_state(job.pg, job.state_schema, dict(
        source_db=job.settings.mysql.db, source_table=plan.source.name, target_schema=plan.schema,
        target_table=plan.table, mode=plan.mode, cursor_column=plan.cursor, watermark=watermark,
        last_run_id=job.run_id, last_success=datetime.now(UTC), last_status="ok", last_error=None,
        rows_inserted=counts.inserted, rows_updated=counts.updated, rows_deleted=counts.deleted,
        zero_dates=counts.zero_dates, seconds=round(time.monotonic() - started, 3), **extra))
    job.pg.commit()
    return step, counts


def run_step(job, plan, step: Step, previous):
    """The mode's work; after a create or reload, the state a later incremental or diff run starts from."""
    if step.action not in ("create", "reload"):
        return MODES[step.action](job, plan, step, previous)
    counts = full.create(job, plan) if step.action == "create" else full.reload(job, plan, step)
    # the next incremental run compares every key once, then keeps the key set's digest
    extra = {"signature": None, "buckets": None, "bucket_width": None, "key_rows": None, "key_digest": None}
    if plan.mode == "diff":
        extra.update(diff.create(job, plan))
    else:
        state.drop_buckets(job.pg, job.state_schema, job.settings.mysql.db, plan.source.name)
    return counts, extra


def check_adoption(job, plan):
    """A target that exists but is not in the state: another copy's, or not created by this service."""
    owner = state.owner_of(job.pg, job.state_schema, plan.schema, plan.table)
    if owner is not None:
        raise TableError(f"table {plan.label!r}: {plan.schema}.{plan.table} is already the copy of "
                         f"{owner[0]}.{owner[1]}; two MySQL tables cannot share one PostgreSQL table")
    if not job.settings.adopts(plan.source.name):
        raise TableError(f"table {plan.label!r}: {plan.schema}.{plan.table} exists in PostgreSQL but was not "
                         f"created by this service; it is left alone (set MYSQL_ADOPT_TABLES={plan.source.name} "
                         "to take it over: its rows are then replaced by MySQL's)")
    log.warning("%s: taking over the existing %s.%s (MYSQL_ADOPT_TABLES): its rows are replaced by MySQL's",
                plan.label, plan.schema, plan.table)


def high_watermark(job, plan):
    """The largest cursor (or append key) value in the snapshot, as text; None when empty."""
    value = job.source.execute(f"SELECT MAX({q(plan.cursor)}) FROM {q(plan.source.name)}")[0][0]
    if value is None or str(value).startswith("0000-00-00"):
        return None
    return str(value)


# ---------------------------------------------------------------- the run's surroundings


def report_gone(job, present):
    """Copies whose MySQL table no longer exists: a warning each run, or dropped (MYSQL_DROP_GONE_TABLES)."""
    known = state.table_states(job.pg, job.state_schema, job.settings.mysql.db)
    for row in known:
        if row["source_table"] in present:
            continue
        target = f"{row['target_schema']}.{row['target_table']}"
        if job.settings.drop_gone_tables:
            drop_gone(job, row, target)
        else:
            log.warning("%s: gone from MySQL (dropped or renamed); its copy %s is kept (MYSQL_DROP_GONE_TABLES=true "
                        "drops such copies)", row["source_table"], target)
            state.record_table_failure(job.pg, job.state_schema, job.settings.mysql.db, row["source_table"],
                                       job.run_id, "gone from MySQL", status="gone")


def drop_gone(job, row, target):
    try:
        execute(job, sql.SQL("DROP TABLE IF EXISTS {}").format(ident(row["target_schema"], row["target_table"])))
        state.drop_table_state(job.pg, job.state_schema, job.settings.mysql.db, row["source_table"])
        job.pg.commit()
        log.warning("%s: gone from MySQL: its copy %s was dropped (MYSQL_DROP_GONE_TABLES=true)",
                    row["source_table"], target)
    except psycopg2.Error as exc:
        job.run.rollback()
        log.error("%s: gone from MySQL, but its copy %s could not be dropped: %s", row["source_table"], target,
                  " ".join(str(exc).split()))


def clean_leftovers(job):
    """Drop tables a killed run of an earlier version (which swapped reloaded tables in) left behind.

    Only names of exactly that form, and never one the state knows as a copy (a MySQL table may be called so)."""
    leftovers = execute(job, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname ~ %s",
                        (job.settings.target_schema, LEFTOVER))
    for (name,) in leftovers:
        if state.owner_of(job.pg, job.state_schema, job.settings.target_schema, name) is not None:
            continue
        execute(job, sql.SQL("DROP TABLE IF EXISTS {}").format(ident(job.settings.target_schema, name)))
        log.warning("dropped %s.%s, left behind by an interrupted run", job.settings.target_schema, name)
    job.pg.commit()


def report(results):
    """Print the end-of-run summary table."""
    headers = ["table", "mode", "inserted", "updated", "deleted", "zero dates", "seconds", "status"]
    for line in format_table(headers, [r.row() for r in results]).splitlines():
        log.info("summary | %s", line)
    failed_tables = [r.table for r in results if r.status == "failed"]
    log.info("run finished: %s table(s), %s failed%s", len(results), len(failed_tables),
             f" ({', '.join(failed_tables)})" if failed_tables else "")

