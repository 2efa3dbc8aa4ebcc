"""One run of the MySQL → PostgreSQL sync: plan every table, sync each in its own transaction.

Per table: take its advisory lock (a table another run holds is skipped), open a
consistent MySQL snapshot, let the mode write into an open PostgreSQL transaction, save
the new watermark in that same transaction, commit.  A failing table is recorded and
the run carries on; a lost connection is re-opened and the table tried once more.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
from psycopg2 import sql

from .. import postgres, runlog, state
from ..config import MysqlSyncSettings
from ..errors import EXIT_FAILED, EXIT_OK, ConfigError, ItemError, TableError
from ..postgres import ident
from ..report import format_table
from .copy import Counts, describe_target, ensure_schema, execute
from .modes import append, full, incremental
from .plan import make_plan, target_names
from .source import MySQLSource
from .types import Options, q

log = logging.getLogger("datasync.mysql")
APPLICATION = "datasync mysql_sync"  # application_name in pg_stat_activity
MODES = {"full": full.run, "incremental": incremental.run, "append": append.run}


@dataclass
class Job:
    settings: MysqlSyncSettings
    run: runlog.Run
    source: MySQLSource
    full_refresh: bool = False
    options: Options = Options()
    log: logging.Logger = log

    @property
    def pg(self):
        return self.run.pg

    @property
    def run_id(self):
        return self.run.id


@dataclass
class Result:
    table: str
    mode: str
    status: str            # ok, failed, locked, skipped
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self):
        """The run-history form: plain numbers, queryable with jsonb operators."""
        return {"table": self.table, "mode": self.mode, "status": self.status, **vars(self.counts),
                "seconds": round(self.seconds, 3), "error": self.error}

    def row(self):
        c = self.counts
        return [self.table, self.mode, c.inserted, c.updated, c.deleted, c.zero_dates,
                round(self.seconds, 1), self.status if not self.error else f"{self.status}: {self.error}"]


def run(settings, tables=(), full_refresh=False) -> int:
    """Sync every selected table; return the exit code (0 all ok, 1 a table failed)."""
    return runlog.run_job(settings, "mysql_sync", APPLICATION, lambda r: sync_all(r, settings, tables, full_refresh))


def sync_all(run, settings, tables, full_refresh):
    job = connect(settings, run, full_refresh)
    results = []
    try:
        plans = prepare(job, select_tables(job, tables), results)
        for plan in plans:
            results.append(sync_table(job, plan))
    finally:
        run.details = [r.as_dict() for r in results]
        job.source.close()
    report(results)
    return EXIT_OK if all(r.status in ("ok", "locked", "skipped") for r in results) else EXIT_FAILED


def connect(settings, run, full_refresh=False):
    """The MySQL source, and what the export depends on: PostGIS in the target, the MySQL version."""
    source = MySQLSource(settings.mysql, settings.common).connect()
    runlog.on_stop(source.cancel)
    job = Job(settings, run, source, full_refresh=full_refresh)
    postgis = bool(execute(job, "SELECT 1 FROM pg_extension WHERE extname = 'postgis'"))
    job.pg.rollback()
    version = source.version()
    job.options = Options(settings.tinyint1_as_boolean, postgis, wkt_long_lat=source.is_mysql8(version))
    log.info("MySQL %s (%s), PostgreSQL %s (%s/%s)", version, settings.mysql.db,
             postgres.server_version(job.pg), settings.postgres.db, settings.target_schema)
    return job


def select_tables(job, cli_tables=()):
    """Base tables matching MYSQL_TABLES / MYSQL_EXCLUDE_TABLES (and --tables when given)."""
    names = [n for n in job.source.base_tables() if job.settings.selects(n)]
    if cli_tables:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in cli_tables)]
        if not names:
            raise ConfigError(f"--tables {','.join(cli_tables)} matches no selected table in {job.settings.mysql.db}")
    return names


def prepare(job, names, results):
    """Plans for the tables that can be synced; the rest go straight into ``results``."""
    described = job.source.describe(names)
    folded = {}
    for name in names:
        folded.setdefault(postgres.pg_name(name), []).append(name)
    plans = []
    for name in names:
        try:
            if len(folded[postgres.pg_name(name)]) > 1:
                target_names(folded[postgres.pg_name(name)])  # raises, naming both tables
            plan = make_plan(described[name], job.settings, job.settings.target_schema,
                             postgres.pg_name(name), job.options)
        except TableError as exc:
            log.error("table %r cannot be synced: %s", name, exc)
            results.append(Result(name, "-", "failed", error=str(exc)))
            continue
        if plan.mode == "skip":
            results.append(Result(name, "skip", "skipped"))
            continue
        plans.append(plan)
    return plans


def sync_table(job, plan) -> Result:
    """Sync one table under its advisory lock (released with its transaction); a lost connection
    is re-opened and the table tried once more; a failure is recorded and the run goes on."""
    started = time.monotonic()
    try:
        mode, counts = job.run.attempt(plan.label, lambda: sync_once(job, plan), on_reconnect=job.source.reconnect)
    except Locked:
        log.info("%s: another run is syncing this table; skipped", plan.label)
        return Result(plan.label, plan.mode, "locked")
    except ItemError as exc:
        return failed(job, plan, str(exc), started)
    result = Result(plan.label, mode, "ok", counts, time.monotonic() - started)
    log.info("%s: %s ok: %s inserted, %s updated, %s deleted, %s zero dates nulled in %.1fs",
             plan.label, mode, counts.inserted, counts.updated, counts.deleted, counts.zero_dates, result.seconds)
    return result


class Locked(Exception):  # noqa: N818 - not an error: another run holds the table
    """Another run holds this table's advisory lock."""


def failed(job, plan, error, started):
    log.error("%s: failed: %s", plan.label, error)
    try:
        state.record_table_failure(job.pg, job.settings.postgres.state_schema, job.settings.mysql.db,
                                   plan.source.name, job.run_id, error)
    except psycopg2.Error:
        job.run.rollback()
        log.debug("could not record the failure of %s", plan.label, exc_info=True)
    job.source.reconnect()  # drop any half-read result and the snapshot
    return Result(plan.label, plan.mode, "failed", seconds=time.monotonic() - started, error=error)


def sync_once(job, plan):
    """One attempt: decide the mode, copy inside a MySQL snapshot, commit data + watermark together."""
    started = time.monotonic()
    schema = job.settings.postgres.state_schema
    if not postgres.try_xact_lock(job.pg, f"mysql:{plan.schema}.{plan.table}"):
        raise Locked()
    previous = state.get_table_state(job.pg, schema, job.settings.mysql.db, plan.source.name)
    existing = describe_target(job.pg, plan.schema, plan.table)
    mode, since, statements = decide(job, plan, previous, existing)
    ensure_schema(job, plan.schema)
    for statement in statements:
        execute(job, statement)
    job.source.begin_snapshot()
    try:
        watermark = high_watermark(job, plan) if plan.cursor else None
        counts = MODES[mode](job, plan, existing if mode == "full" else None, since)
    finally:
        job.source.end_snapshot()
    if watermark is None and previous and mode != "full":
        watermark = previous["watermark"]
    state.save_table_state(job.pg, schema, dict(
        source_db=job.settings.mysql.db, source_table=plan.source.name, target_schema=plan.schema,
        target_table=plan.table, mode=plan.mode, cursor_column=plan.cursor, watermark=watermark,
        last_run_id=job.run_id, last_success=datetime.now(UTC), last_status="ok", last_error=None,
        rows_inserted=counts.inserted, rows_updated=counts.updated, rows_deleted=counts.deleted,
        zero_dates=counts.zero_dates, seconds=round(time.monotonic() - started, 3)))
    job.pg.commit()
    return mode, counts


def decide(job, plan, previous, existing):
    """(mode to run now, watermark to read from, DDL to apply first).

    Full reloads wherever the copy cannot be trusted: a new table, --full-refresh, a
    mode or cursor change, a changed column type.  New columns are added and, since the
    existing rows need their values, every row is read again.
    """
    if existing is None:
        return _full(plan, "new table")
    if job.full_refresh:
        return _full(plan, "--full-refresh")
    if plan.mode == "full":
        return "full", None, []
    if not previous or previous["mode"] != plan.mode or previous["cursor_column"] != plan.cursor \
            or previous["watermark"] is None:
        return _full(plan, f"first {plan.mode} sync")
    changed = [t.name for t in plan.columns if t.name in existing and existing[t.name][0] != t.mapping.pg_type]
    if changed:
        return _full(plan, f"type of column(s) {', '.join(changed)} changed")
    added, statements = drift(plan, existing)
    if added and plan.mode == "append":
        return _full(plan, f"new column(s) {', '.join(added)}")
    if added:
        log.info("%s: new column(s) %s: re-reading every row", plan.label, ", ".join(added))
        return plan.mode, None, statements
    return plan.mode, previous["watermark"], statements


def _full(plan, reason):
    log.info("%s: full reload (%s)", plan.label, reason)
    return "full", None, []


def drift(plan, existing):
    """(added column names, DDL) that bring an existing table in line with MySQL.

    Dropped MySQL columns are kept in PostgreSQL (made nullable) with a warning.
    """
    table = ident(plan.schema, plan.table)
    added, statements = [], []
    for t in plan.columns:
        if t.name not in existing:
            statements.append(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                table, ident(t.name), sql.SQL(t.mapping.pg_type)))
            added.append(t.name)
        elif existing[t.name][1] and t.nullable:
            statements.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(table, ident(t.name)))
    mine = {t.name for t in plan.columns}
    for name, (_, notnull) in existing.items():
        if name not in mine:
            log.warning("%s: column %s no longer exists in MySQL; kept in PostgreSQL (new rows get NULL)",
                        plan.label, name)
            if notnull:
                statements.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(table, ident(name)))
    return added, statements


def high_watermark(job, plan):
    """The largest cursor (or append key) value in the snapshot, as text; None when empty."""
    value = job.source.execute(f"SELECT MAX({q(plan.cursor)}) FROM {q(plan.source.name)}")[0][0]
    if value is None or str(value).startswith("0000-00-00"):
        return None
    return str(value)


def report(results):
    """Print the end-of-run summary table."""
    headers = ["table", "mode", "inserted", "updated", "deleted", "zero dates", "seconds", "status"]
    for line in format_table(headers, [r.row() for r in results]).splitlines():
        log.info("summary | %s", line)
    failed_tables = [r.table for r in results if r.status == "failed"]
    log.info("run finished: %s table(s), %s failed%s", len(results), len(failed_tables),
             f" ({', '.join(failed_tables)})" if failed_tables else "")
