"""Full mode: load a new table beside the live one, then swap it in atomically.

The new table is created, filled (COPY FREEZE), indexed and renamed in one transaction,
so readers see the old rows until the commit and the new ones after it, never an empty
or half-filled table.  Grants on the old table are carried over.  Columns that exist in
PostgreSQL but no longer in MySQL are kept (nullable, empty) with a warning upstream.
"""

from __future__ import annotations

import hashlib

from psycopg2 import sql

from ...errors import TableError
from ...postgres import ident
from ..copy import Counts, copy_select, execute, table_ref
from ..plan import create_table_sql, index_sql, tmp_name


def run(job, plan, existing, since=None):
    new = "_datasync_new_" + hashlib.sha1(plan.table.encode()).hexdigest()[:16]
    mine = {t.name for t in plan.columns}
    retained = [(name, pg_type) for name, (pg_type, _) in (existing or {}).items() if name not in mine]
    execute(job, create_table_sql(plan, new, retained))
    rows, zeros = copy_select(job, plan, table_ref(plan, new), options="(FREEZE)")
    renames = build_indexes(job, plan, new)
    swap(job, plan, new, existing)
    for old_name, final, is_constraint in renames:
        if is_constraint:
            execute(job, sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                table_ref(plan), ident(old_name), ident(final)))
        else:
            execute(job, sql.SQL("ALTER INDEX {} RENAME TO {}").format(ident(plan.schema, old_name), ident(final)))
    execute(job, sql.SQL("ANALYZE {}").format(table_ref(plan)))
    return Counts(inserted=rows, zero_dates=zeros)


def build_indexes(job, plan, table):
    """Create the key and indexes under temporary names; return the renames to do after the swap."""
    execute(job, "SET LOCAL maintenance_work_mem = '256MB'")  # sort in memory: this transaction only
    renames = []
    for statement, final, skipped in index_sql(plan, table, suffix="new"):
        if skipped:
            job.log.info("%s: index %s skipped: %s", plan.label, final, skipped)
            continue
        execute(job, statement)
        is_constraint = statement.as_string(job.pg).startswith("ALTER TABLE")
        renames.append((tmp_name(final, "new"), final, is_constraint))
    return renames


def swap(job, plan, new, existing):
    if existing is not None:
        copy_grants(job, plan, new)
        dependents = execute(job, sql.SQL(
            "SELECT DISTINCT r.ev_class::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "WHERE d.refobjid = {}::regclass AND r.ev_class <> d.refobjid").format(
                sql.Literal(table_ref(plan).as_string(job.pg))))
        if dependents:
            raise TableError(f"table {plan.label!r}: views {', '.join(d[0] for d in dependents)} depend on "
                             f"{plan.schema}.{plan.table}; full reloads replace the table, so drop or recreate "
                             "them with the table (or use incremental mode)")
        execute(job, sql.SQL("DROP TABLE {}").format(table_ref(plan)))
    execute(job, sql.SQL("ALTER TABLE {} RENAME TO {}").format(table_ref(plan, new), ident(plan.table)))


def copy_grants(job, plan, new):
    """Re-grant on the new table what was granted on the old one (the owner stays ours)."""
    grants = execute(job, sql.SQL(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END "
        "FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = {}::regclass AND a.grantee <> c.relowner").format(
            sql.Literal(table_ref(plan).as_string(job.pg))))
    for privilege, grantee in grants:
        role = sql.SQL("PUBLIC") if grantee == "PUBLIC" else ident(grantee)
        execute(job, sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), table_ref(plan, new), role))
