"""Stream one SELECT from MySQL into a PostgreSQL COPY, and explain a refused value."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from ..errors import ValueRejected
from ..postgres import copy_in, ident
from ..report import Progress
from .types import q

log = logging.getLogger("datasync.mysql")


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    zero_dates: int = 0


def select_sql(plan, targets=None, where="", order="", batch_by=""):
    """SELECT one COPY-text line per row (and the row's zero-date count when it has dates).

    With ``batch_by`` (an integer expression), MySQL packs the lines of each batch into one
    GROUP_CONCAT row: far fewer rows for PyMySQL to parse (used for key streams).
    """
    targets = plan.columns if targets is None else targets
    line = "CONCAT_WS('\\t', " + ", ".join(t.mapping.export for t in targets) + ")"
    if batch_by:
        return (f"SELECT GROUP_CONCAT({line} SEPARATOR '\\n') FROM {q(plan.source.name)}"
                + (f" WHERE {where}" if where else "") + f" GROUP BY {batch_by}")
    zero = [t.mapping.zero_date for t in targets if t.mapping.zero_date]
    columns = line + (", " + " + ".join(zero) if zero else "")
    return (f"SELECT {columns} FROM {q(plan.source.name)}"
            + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else ""))


def copy_select(job, plan, table_sql, targets=None, where="", args=None, order="", options="", batch_by=""):
    """COPY the rows of ``plan``'s MySQL table (filtered by ``where``) into ``table_sql``.

    Returns (rows copied, zero dates nulled).  A value PostgreSQL refuses becomes a
    ValueRejected naming the table, column and primary key of the MySQL row.
    """
    targets = plan.columns if targets is None else targets
    statement = select_sql(plan, targets, where, order, batch_by)
    has_zero = not batch_by and any(t.mapping.zero_date for t in targets)
    zeros = 0
    progress = Progress(log, f"{plan.label}: copy")

    def chunks():
        nonlocal zeros
        for rows in job.source.stream(statement, args):
            if has_zero:
                zeros += sum(r[1] for r in rows)
            progress.add(len(rows))
            yield b"\n".join([r[0] for r in rows]) + b"\n"

    stream = chunks()
    try:
        count = copy_in(job.pg, table_sql, [t.name for t in targets], stream, options)
    except psycopg2.DataError as exc:
        raise diagnose(job, plan, exc) from exc
    finally:
        stream.close()  # a COPY that stopped early drops the MySQL read now, instead of leaving it to drain
        progress.close()
    return count, zeros


CONTEXT_COLUMN = re.compile(r", column (.+?)(?::|$)", re.M)


def diagnose(job, plan, exc):
    """Turn PostgreSQL's refusal into an error naming column and MySQL primary key."""
    job.source.reconnect()  # the streaming read was cut off mid-result
    context = exc.diag.context or ""
    found = CONTEXT_COLUMN.search(context)
    suspects = [t for t in plan.columns if t.mapping.reject and (not found or t.name == found.group(1))]
    for target in suspects:
        key = job.source.find_rejected(plan.source.name, plan.key, target.mapping.reject)
        if key:
            return ValueRejected(f"table {plan.label!r}: column {target.column!r} {target.mapping.reason} "
                                 f"(row {key})")
    where = f" ({context.splitlines()[0]})" if context else ""
    return ValueRejected(f"table {plan.label!r}: PostgreSQL refused a value: "
                         f"{exc.diag.message_primary}{where}")


def execute(job, statement, args=None):
    with job.pg.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else None


def describe_target(conn, schema, table):
    """{column: (format_type, not null)} of an existing PostgreSQL table, or None."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (ident(schema, table).as_string(conn),))
        if cur.fetchone()[0] is None:
            return None
        cur.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    (ident(schema, table).as_string(conn),))
        return {name: (pg_type, notnull) for name, pg_type, notnull in cur.fetchall()}


def table_ref(plan, table=None):
    return ident(plan.schema, table or plan.table)


def ensure_schema(job, schema):
    execute(job, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))
