"""Full loads: a new table created and filled, or an existing one reloaded in place.

A new table is created, filled with COPY FREEZE and indexed in one transaction.  An existing
table keeps its identity: every row is deleted and the snapshot's rows copied in, in one
transaction, so everything users built on the table -- row-level security and policies,
triggers, indexes, comments, constraints, grants, dependent views, its owner -- stays, and
readers (never blocked: DELETE takes no lock they wait for) see the old rows until the commit
and the new ones after it, never an empty or half-filled table.  Columns that exist in
PostgreSQL but no longer in MySQL are kept (nullable, NULL in the new rows).
"""

from __future__ import annotations

from psycopg2 import sql

from ...errors import TableError
from ..copy import Counts, copy_select, ddl, execute, table_ref
from ..plan import create_table_sql, index_sql


def create(job, plan):
    """Create the target, fill it, then build its key and indexes (faster than filling an indexed table)."""
    execute(job, create_table_sql(plan))
    rows, zeros = copy_select(job, plan, table_ref(plan), freeze=True)
    build_indexes(job, plan)
    execute(job, sql.SQL("ANALYZE {}").format(table_ref(plan)))
    return Counts(inserted=rows, zero_dates=zeros)


def reload(job, plan, step):
    """Replace every row of the existing target in place (changing the types of columns once it is empty)."""
    refuse_if_referenced(job, plan)
    with job.pg.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {}").format(table_ref(plan)))
        deleted = cur.rowcount
    for statement in step.retype:
        ddl(job, plan, statement)
    rows, zeros = copy_select(job, plan, table_ref(plan))
    execute(job, sql.SQL("ANALYZE {}").format(table_ref(plan)))
    return Counts(inserted=rows, deleted=deleted, zero_dates=zeros)


def build_indexes(job, plan):
    execute(job, "SET LOCAL maintenance_work_mem = '256MB'")  # sort in memory: this transaction only
    for statement, name, skipped in index_sql(plan):
        if skipped:
            job.log.info("%s: index %s skipped: %s", plan.label, name, skipped)
        else:
            execute(job, statement)


def refuse_if_referenced(job, plan):
    """A foreign key from another table would make deleting every row cascade into it (or fail)."""
    referencing = execute(job, sql.SQL(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
        "AND confrelid = {}::regclass AND conrelid <> confrelid").format(
            sql.Literal(table_ref(plan).as_string(job.pg))))
    if referencing:
        names = ", ".join(f"{table} ({name})" for table, name in referencing)
        raise TableError(f"table {plan.label!r}: foreign keys of {names} reference {plan.schema}.{plan.table}; "
                         "a full reload deletes and re-inserts every row, which they would cascade into or refuse "
                         "(diff mode changes only the rows that changed: give the table a primary key, or set "
                         f"MYSQL_SYNC_MODES={plan.source.name}=diff)")
