"""What a run of the MySQL sync and the read-only commands share: the job (settings, the run's
PostgreSQL connection, the MySQL source), the tables it selects and their plans.

    connect(settings, run)       the MySQL source, PostGIS in the target, the MySQL version -> Job
    select_tables(job, globs)    base tables matching MYSQL_TABLES / MYSQL_EXCLUDE_TABLES (and --tables)
    prepare(job, names, results) a plan per table that can be synced; the others become Results

sync.py (the run) and commands.py (--status, --dry-run, --verify) both start here; neither
imports the other.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field

from .. import postgres, runlog
from ..config import MysqlSyncSettings
from ..errors import ConfigError, TableError
from .copy import Counts, execute
from .plan import make_plan, target_names
from .source import MySQLSource
from .types import Options

log = logging.getLogger("datasync.mysql")


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

    @property
    def state_schema(self):
        return self.settings.postgres.state_schema


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


def connect(settings, run, full_refresh=False):
    """The MySQL source, and what the export depends on: PostGIS in the target, the MySQL version."""
    source = MySQLSource(settings.mysql, settings.common).connect()
    runlog.on_stop(source.cancel)
    run.watch.add(source.waiting)
    job = Job(settings, run, source, full_refresh=full_refresh)
    postgis = bool(execute(job, "SELECT 1 FROM pg_extension WHERE extname = 'postgis'"))
    job.pg.rollback()
    version = source.version()
    job.options = Options(settings.tinyint1_as_boolean, postgis, wkt_long_lat=source.is_mysql8(version))
    log.info("MySQL %s (%s), PostgreSQL %s (%s/%s)", version, settings.mysql.db,
             postgres.server_version(job.pg), settings.postgres.db, settings.target_schema)
    return job


def select_tables(job, cli_tables=(), present=None):
    """Base tables matching MYSQL_TABLES / MYSQL_EXCLUDE_TABLES (and --tables when given)."""
    names = [n for n in (present if present is not None else job.source.base_tables()) if job.settings.selects(n)]
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
