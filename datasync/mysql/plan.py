"""What to do with each selected table: target names, column mappings, sync mode, this run's step, DDL."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from psycopg2 import sql

from ..errors import TableError
from ..postgres import ident, pg_name, shorten
from . import keys
from .source import SourceTable
from .types import Mapping, Options, map_column

log = logging.getLogger("datasync.mysql")

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
    mode: str          # diff, incremental, full, append, skip
    cursor: str | None  # MySQL column driving incremental/append
    deletes: bool
    reason: str        # why this mode, for the plan and logs

    @property
    def key(self):
        """The MySQL columns identifying a row: the primary key, else a unique key of NOT NULL columns."""
        return self.source.row_key

    def key_targets(self):
        return [self.target_of(c) for c in self.key]

    def pg_key(self):
        return [self.pg_column(c) for c in self.key]

    def target_of(self, mysql_name):
        return next(t for t in self.columns if t.column == mysql_name)

    def pg_column(self, mysql_name):
        return self.target_of(mysql_name).name

    @property
    def label(self):
        return self.source.name


@dataclass
class Step:
    """This run's work for one table, decided from the plan, the stored state and the target table."""

    action: str               # create (new table), reload (in place: every row replaced), or the plan's mode
    reason: str = ""
    since: str | None = None  # incremental/append: read from this watermark
    ddl: list = field(default_factory=list)  # run first, in the table's transaction
    retype: list = field(default_factory=list)  # reload: ALTER ... TYPE, run once every row is deleted
    rebuild: bool = False     # diff: no trusted digests; compare every bucket


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
    columns, key = [], set(source.row_key)
    for c in source.columns:
        mapping = map_column(c, options)
        # zero dates arrive as NULL, and legacy tables have NOT NULL DEFAULT '0000-00-00' columns (not in a
        # key: a key column is NOT NULL in PostgreSQL, and a zero date there fails the table, naming it)
        columns.append(Target(c.name, names[c.name], mapping,
                              c.nullable or (mapping.zero_date is not None and c.name not in key)))
    plan = TablePlan(source, schema, table, columns, "full", None, False, "")
    plan.mode, plan.cursor, plan.reason = choose_mode(plan, settings)
    plan.deletes = plan.mode == "incremental" and settings.propagates_deletes(source.name)
    return plan


def choose_mode(plan: TablePlan, settings):
    """Resolve (mode, cursor column, reason) from overrides and the table's shape.

    Without an override: incremental when the table has a primary key and a cursor column,
    diff when it has a key of hashable types, else full.
    """
    source = plan.source
    override = settings.mode_for(source.name)
    key = source.primary_key
    if override and override.mode in ("full", "skip"):
        return override.mode, None, "MYSQL_SYNC_MODES"
    if override and override.mode == "append":
        column = override.column or (key[0] if len(key) == 1 else None)
        if not column or _type(source, column) not in INTEGER_TYPES:
            raise TableError("append mode needs an integer column (name it: table=append:column)")
        return "append", column, "MYSQL_SYNC_MODES"
    if override and override.mode == "diff":
        if not plan.key:
            raise TableError("diff mode needs a primary key or a unique key of NOT NULL columns")
        unsupported = keys.unsupported(plan)
        if unsupported:
            raise TableError(f"diff mode cannot hash key column(s) {', '.join(unsupported)}")
        return "diff", None, "MYSQL_SYNC_MODES"
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
    if plan.key and not keys.unsupported(plan):
        return "diff", None, "key, no cursor column"
    if plan.key:
        return "full", None, f"key column(s) {', '.join(keys.unsupported(plan))} cannot be hashed"
    return "full", None, "no primary or unique key"


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


# --- this run's step -----------------------------------------------------------------------


def decide(plan: TablePlan, previous, existing, full_refresh=False) -> Step:
    """This run's step for a table whose target exists (``existing``) or not, given its stored state.

    Wherever the copy cannot be trusted -- --full-refresh, a mode or cursor change, a changed
    column type -- every row is compared again (diff) or replaced in place (other modes).  New
    columns are added; since the existing rows need their values, every row is read again.
    """
    if existing is None:
        log.info("%s: full load (new table)", plan.label)
        return Step("create", "new table")
    retype = [t for t in plan.columns if t.name in existing and existing[t.name][0] != t.mapping.pg_type]
    added, ddl = drift(plan, existing)
    if retype:  # every mode: the new type is filled from MySQL, never cast from the old values
        why = f"type of column(s) {', '.join(t.name for t in retype)} changed"
        log.info("%s: full reload in place (%s)", plan.label, why)
        return Step("reload", why, ddl=ddl, retype=retype_sql(plan, retype))
    if full_refresh:
        return _everything(plan, "--full-refresh", ddl)
    if plan.mode == "full":
        return Step("reload", "full mode", ddl=ddl)
    if not previous or previous["mode"] != plan.mode or previous["cursor_column"] != plan.cursor \
            or (plan.mode in ("incremental", "append") and previous["watermark"] is None):
        return _everything(plan, f"first {plan.mode} sync", ddl)
    if added and plan.mode == "append":
        return _everything(plan, f"new column(s) {', '.join(added)}", ddl)
    if added and plan.mode == "incremental":
        log.info("%s: new column(s) %s: re-reading every row", plan.label, ", ".join(added))
        return Step("incremental", "new columns", None, ddl)
    return Step(plan.mode, plan.reason, previous["watermark"], ddl)


def _everything(plan, reason, ddl):
    if plan.mode == "diff":
        log.info("%s: comparing every row (%s)", plan.label, reason)
        return Step("diff", reason, ddl=ddl, rebuild=True)
    log.info("%s: full reload in place (%s)", plan.label, reason)
    return Step("reload", reason, ddl=ddl)


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


def retype_sql(plan, targets):
    """ALTER TABLE ... TYPE, run on the emptied table: it keeps its identity, its indexes are rebuilt."""
    return [sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING NULL").format(
        ident(plan.schema, plan.table), ident(t.name), sql.SQL(t.mapping.pg_type)) for t in targets]


# --- DDL ---------------------------------------------------------------------------------

def create_table_sql(plan: TablePlan, table: str | None = None):
    """CREATE TABLE for the target (or a table of the same columns)."""
    defs = [sql.SQL("{} {}{}").format(ident(t.name), sql.SQL(t.mapping.pg_type),
                                      sql.SQL("" if t.nullable else " NOT NULL")) for t in plan.columns]
    return sql.SQL("CREATE TABLE {} ({})").format(ident(plan.schema, table or plan.table), sql.SQL(", ").join(defs))


def index_sql(plan: TablePlan):
    """(statement, index name, skipped reason) for the primary key and every index."""
    out = []
    table = ident(plan.schema, plan.table)
    for index in plan.source.indexes:
        if index.kind in ("FULLTEXT", "SPATIAL") or any(c is None for c, _ in index.columns):
            out.append((None, index.name, f"{index.kind.lower()} or functional index is not copied"))
            continue
        if index.name == "PRIMARY":
            name = shorten(f"{plan.table}_pkey")
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                table, ident(name), sql.SQL(", ").join(ident(plan.pg_column(c)) for c, _ in index.columns))
            out.append((stmt, name, None))
            continue
        name = shorten(f"{plan.table}_{pg_name(index.name)}")
        parts = [_index_part(plan, c, prefix) for c, prefix in index.columns]
        if index.unique and not any(prefix for _, prefix in index.columns):
            stmt = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({}) DEFERRABLE INITIALLY DEFERRED").format(
                table, ident(name), sql.SQL(", ").join(parts))
        else:
            stmt = sql.SQL("CREATE {}INDEX {} ON {} ({})").format(
                sql.SQL("UNIQUE " if index.unique else ""), ident(name), table, sql.SQL(", ").join(parts))
        out.append((stmt, name, None))
    return out


def _index_part(plan, column, prefix):
    name = ident(plan.pg_column(column))
    if not prefix:
        return name
    pg_type = plan.target_of(column).mapping.pg_type
    func = "substring({} from 1 for {})" if pg_type == "bytea" else "left({}, {})"
    return sql.SQL("(" + func + ")").format(name, sql.Literal(prefix))
