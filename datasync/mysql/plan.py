"""What to do with each selected table: target names, column mappings, sync mode, DDL."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from psycopg2 import sql

from ..errors import TableError
from ..postgres import ident, pg_name, shorten
from .source import SourceTable
from .types import Mapping, Options, map_column

CURSOR_TYPES = ("timestamp", "datetime", "date")
INTEGER_TYPES = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")


@dataclass
class Target:
    column: str        # MySQL name
    name: str          # PostgreSQL name
    mapping: Mapping
    nullable: bool


@dataclass
class TablePlan:
    source: SourceTable
    schema: str
    table: str
    columns: list      # of Target, in MySQL order
    mode: str          # incremental, full, append, skip
    cursor: str | None  # MySQL column driving incremental/append
    deletes: bool
    reason: str        # why this mode, for the plan and logs

    @property
    def key(self):
        return self.source.primary_key

    def pg_key(self):
        return [self.pg_column(c) for c in self.key]

    def pg_column(self, mysql_name):
        return next(t.name for t in self.columns if t.column == mysql_name)

    @property
    def label(self):
        return self.source.name


def target_names(names):
    """Map MySQL names to folded PostgreSQL names; raise on a collision."""
    mapped, seen = {}, {}
    for name in names:
        folded = pg_name(name)
        if folded in seen:
            raise TableError(f"{name!r} and {seen[folded]!r} both become {folded!r} in PostgreSQL")
        seen[folded] = name
        mapped[name] = folded
    return mapped


def make_plan(source: SourceTable, settings, schema, table, options: Options) -> TablePlan:
    """Build the plan for one table; TableError says what cannot be copied."""
    names = target_names([c.name for c in source.columns])
    columns = []
    for c in source.columns:
        mapping = map_column(c, options)
        # zero dates arrive as NULL, and legacy tables have NOT NULL DEFAULT '0000-00-00' columns
        columns.append(Target(c.name, names[c.name], mapping, c.nullable or mapping.zero_date is not None))
    mode, cursor, reason = choose_mode(source, settings)
    return TablePlan(source, schema, table, columns, mode, cursor,
                     mode == "incremental" and settings.propagates_deletes(source.name), reason)


def choose_mode(source: SourceTable, settings):
    """Resolve (mode, cursor column, reason) from overrides and the table's shape."""
    override = settings.mode_for(source.name)
    key = source.primary_key
    if override and override.mode in ("full", "skip"):
        return override.mode, None, "MYSQL_SYNC_MODES"
    if override and override.mode == "append":
        column = override.column or (key[0] if len(key) == 1 else None)
        if not column or _type(source, column) not in INTEGER_TYPES:
            raise TableError("append mode needs an integer column (name it: table=append:column)")
        return "append", column, "MYSQL_SYNC_MODES"
    if override:  # incremental
        column = override.column or _auto_cursor(source, settings)
        if not key:
            raise TableError("incremental mode needs a primary key")
        if not column or _type(source, column) not in CURSOR_TYPES:
            raise TableError("incremental mode needs a DATE/DATETIME/TIMESTAMP cursor column "
                             "(name it: table=incremental:column)")
        return "incremental", column, "MYSQL_SYNC_MODES"
    column = _auto_cursor(source, settings)
    if key and column:
        return "incremental", column, f"primary key and cursor column {column}"
    return "full", None, "no primary key" if not key else "no cursor column"


def _type(source, column):
    try:
        return source.column(column).data_type
    except StopIteration:
        raise TableError(f"column {column!r} does not exist") from None


def _auto_cursor(source, settings):
    for col in source.columns:
        if col.on_update_timestamp:
            return col.name
    wanted = {c.lower() for c in settings.cursor_columns}
    for col in source.columns:
        if col.name.lower() in wanted and col.data_type in CURSOR_TYPES:
            return col.name
    return None


# --- DDL ---------------------------------------------------------------------------------

def create_table_sql(plan: TablePlan, table: str, retained=()):
    """CREATE TABLE for ``table`` (the target or a new copy); ``retained`` = (name, type) kept columns."""
    defs = [sql.SQL("{} {}{}").format(ident(t.name), sql.SQL(t.mapping.pg_type),
                                      sql.SQL("" if t.nullable else " NOT NULL")) for t in plan.columns]
    defs += [sql.SQL("{} {}").format(ident(name), sql.SQL(pg_type)) for name, pg_type in retained]
    return sql.SQL("CREATE TABLE {} ({})").format(ident(plan.schema, table), sql.SQL(", ").join(defs))


def index_sql(plan: TablePlan, table: str, suffix=""):
    """(statement, final index name, skipped reason) for the primary key and every index."""
    out = []
    for index in plan.source.indexes:
        if index.kind in ("FULLTEXT", "SPATIAL") or any(c is None for c, _ in index.columns):
            out.append((None, index.name, f"{index.kind.lower()} or functional index is not copied"))
            continue
        if index.name == "PRIMARY":
            final = shorten(f"{plan.table}_pkey")
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                ident(plan.schema, table), ident(tmp_name(final, suffix)),
                sql.SQL(", ").join(ident(plan.pg_column(c)) for c, _ in index.columns))
            out.append((stmt, final, None))
            continue
        final = shorten(f"{plan.table}_{pg_name(index.name)}")
        parts = [_index_part(plan, c, prefix) for c, prefix in index.columns]
        if index.unique and not any(prefix for _, prefix in index.columns):
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({}) DEFERRABLE INITIALLY DEFERRED").format(
                ident(plan.schema, table), ident(tmp_name(final, suffix)), sql.SQL(", ").join(parts))
        else:
            stmt = sql.SQL("CREATE {}INDEX {} ON {} ({})").format(
                sql.SQL("UNIQUE " if index.unique else ""), ident(tmp_name(final, suffix)),
                ident(plan.schema, table), sql.SQL(", ").join(parts))
        out.append((stmt, final, None))
    return out


def _index_part(plan, column, prefix):
    name = ident(plan.pg_column(column))
    if not prefix:
        return name
    pg_type = next(t.mapping.pg_type for t in plan.columns if t.column == column)
    func = "substring({} from 1 for {})" if pg_type == "bytea" else "left({}, {})"
    return sql.SQL("(" + func + ")").format(name, sql.Literal(prefix))


def tmp_name(name, suffix):
    """A temporary name for an index built beside the live table, renamed at the swap."""
    if not suffix:
        return name
    return shorten(f"{name[:40]}_{suffix}_{hashlib.sha1(name.encode()).hexdigest()[:6]}")
