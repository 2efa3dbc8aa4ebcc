"""Stream one SELECT from MySQL into a PostgreSQL COPY; large values in pieces; explain a refused value.

Each row of the SELECT is (line, tail[, zero dates]): ``line`` is the row's COPY line, written
by MySQL (types.py); ``tail`` is empty unless a text value holds the QUOTE byte or a value is
too large to travel in one MySQL packet.  Then the tail says, per text or large column, what
the line holds there, and Python rebuilds that line:

    N             NULL
    D             too large: a placeholder now; read in pieces after the COPY (same snapshot)
    <len>         a text value of <len> bytes, as sent in the line
    <len>:<raw>   a text value holding QUOTE: the raw bytes follow (the line's copy is not framed)

Values larger than a packet allows are read in pieces by key (SUBSTRING, each piece well
under max_allowed_packet), streamed into a temporary table and assembled by PostgreSQL in the
same transaction, so no value is ever turned into NULL, and memory stays bounded by a piece.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from ..errors import TableError, ValueRejected
from ..postgres import copy_in, ident
from ..report import Progress
from .source import ChangedOnTheWay
from .types import INT_TYPES, QUOTE, QUOTE_SQL, q

log = logging.getLogger("datasync.mysql")

COPY_OPTIONS = "FORMAT csv, DELIMITER E'\\t', QUOTE E'\\x01'"
PACKET_RESERVE = 1 << 20       # room a row keeps for its small columns and the protocol
PIECE_BYTES = 16 << 20         # at most this much of a large value per round trip
HEX_CHUNK = 1 << 20            # bytes of a piece turned into hex text at a time
PIECES = "_datasync_pieces"
KEY_BATCH = 20000              # integer keys MySQL packs into one row of a key stream


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    zero_dates: int = 0
    compared: int = 0  # diff mode: rows re-read to compare


@dataclass
class Deferred:
    """A value too large for one packet: its row's key fields (COPY text) and its target column."""

    key: list
    target: object


class Export:
    """The SELECT that makes MySQL write COPY lines for ``targets``, and the Python side of its rows."""

    def __init__(self, plan, targets, max_packet):
        self.plan, self.targets, self.max_packet = plan, targets, max_packet
        self.special = [t for t in targets if t.mapping.quoted or t.mapping.large]
        budget = max_packet - min(PACKET_RESERVE, max_packet // 4)
        # a text value holding QUOTE travels twice (line and tail): every large column gets half a share
        self.bound = budget // (2 * max(1, sum(t.mapping.large for t in targets)))
        self.zeros = [t.mapping.zero_date for t in targets if t.mapping.zero_date]

    # --- SQL ---------------------------------------------------------------------------

    def field(self, t):
        m = t.mapping
        field = f"CONCAT({QUOTE_SQL}, {m.value}, {QUOTE_SQL})" if m.quoted else m.value
        if m.large:
            field = f"IF({m.size} > {self.bound}, '', {field})"
        return f"IFNULL({field}, '')" if t.nullable else field

    def line(self):
        return "CONCAT_WS('\\t', " + ", ".join(self.field(t) for t in self.targets) + ")"

    def tail(self):
        """The tail column (see the module docstring), or None when no column needs one.

        A large value is only measured (LENGTH of the stored column, O(1)) before its export
        expression could be evaluated: an oversized HEX() or CONVERT() would come back NULL."""
        if not self.special:
            return None
        small = [t.mapping.value for t in self.special if t.mapping.quoted and not t.mapping.large]
        # one INSTR over the small text values together (their concatenation stays far below a packet)
        checks = [f"INSTR(CONCAT_WS('', {', '.join(small)}), {QUOTE_SQL}) > 0"] if small else []
        entries = []
        for t in self.special:
            m, v = t.mapping, t.mapping.value
            big = f"{m.size} > {self.bound}" if m.large else "FALSE"
            checks += ([big] if m.large else []) + ([f"INSTR({v}, {QUOTE_SQL}) > 0"] if m.quoted and m.large else [])
            inline = f"IF(INSTR({v}, {QUOTE_SQL}) > 0, CONCAT(LENGTH({v}), ':', {v}), LENGTH({v}))" \
                if m.quoted else "'-'"
            entries.append(f"IF({q(t.column)} IS NULL, 'N', IF({big}, 'D', {inline}))")
        return f"IF({' OR '.join(checks)}, CONCAT_WS(';', {', '.join(entries)}), '')"

    def digest_line(self):
        """The row as diff mode hashes it: the same values as the COPY line, but each text value
        prefixed by its length instead of framed by QUOTE (no byte inside a value can make two
        rows read alike, and no INSTR is needed), and a value too large for a packet named by
        the SHA-256 of its stored bytes."""
        fields = []
        for t in self.targets:
            m = t.mapping
            field = f"CONCAT(LENGTH({m.value}), ':', {m.value})" if m.quoted else m.value
            if m.large:
                field = f"IF({m.size} > {self.bound}, CONCAT('D', SHA2({q(t.column)}, 256)), {field})"
            fields.append(f"IFNULL({field}, '')" if t.nullable else field)
        return "CONCAT_WS('\\t', " + ", ".join(fields) + ")"

    def select(self, where="", order="", join=""):
        columns = [self.line()] + [c for c in (self.tail(),) if c] + ([" + ".join(self.zeros)] if self.zeros else [])
        return (f"SELECT {', '.join(columns)} FROM {q(self.plan.source.name)}{join}"
                + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else ""))

    # --- Python side -----------------------------------------------------------------------

    def chunk(self, rows, deferred):
        """COPY input for a batch of rows; values too large for a packet are added to ``deferred``."""
        if any(r[0] is None for r in rows):
            raise TableError(f"table {self.plan.label!r}: a row's COPY line is larger than MySQL's "
                             f"max_allowed_packet; the table cannot be read")
        if not self.special:
            return b"\n".join([r[0] for r in rows]) + b"\n"
        return b"\n".join([r[0] if not r[1] else self.rebuild(r[0], r[1], deferred) for r in rows]) + b"\n"

    def rebuild(self, line, tail, deferred):
        """The COPY line of a row whose tail is not empty (see the module docstring)."""
        entries = iter(parse_tail(tail))
        fields, pos, pending = [], 0, []
        for t in self.targets:
            kind, length, raw = next(entries) if t.mapping.quoted or t.mapping.large else ("-", 0, None)
            if kind in ("N", "D"):  # the line holds an empty field here
                width, field = 0, (t.mapping.placeholder if kind == "D" else b"")
                if kind == "D":
                    pending.append(t)
            elif kind == "-":       # unquoted: up to the next tab
                end = line.find(b"\t", pos)
                width = (len(line) if end < 0 else end) - pos
                field = line[pos:pos + width]
            else:                   # QUOTE + length bytes + QUOTE; raw when the bytes hold QUOTE
                width = length + 2
                field = line[pos:pos + width] if raw is None else QUOTE + raw.replace(QUOTE, QUOTE + QUOTE) + QUOTE
            fields.append(field)
            pos += width + 1        # and the tab
        if pending and not self.plan.key:
            raise TableError(f"table {self.plan.label!r}: column {pending[0].column!r} of a row (table has no key) "
                             f"holds a value too large for one MySQL packet (max_allowed_packet {self.max_packet} "
                             "bytes); without a primary or unique key it cannot be read in pieces")
        if pending:
            key = [fields[self.targets.index(t)] for t in self.plan.key_targets()]
            deferred.extend(Deferred(key, t) for t in pending)
        return b"\t".join(fields)


def parse_tail(tail):
    """[(kind, length, raw)] from a tail: kind N, D, '-' or 'T' (text of ``length`` bytes, ``raw`` or None)."""
    out, pos = [], 0
    while pos < len(tail):
        head = tail[pos:pos + 1]
        if head in (b"N", b"D", b"-"):
            out.append((head.decode(), 0, None))
            pos += 1
        else:
            digits = re.match(rb"\d+", tail[pos:]).group()
            length, pos = int(digits), pos + len(digits)
            raw = None
            if tail[pos:pos + 1] == b":":
                raw, pos = tail[pos + 1:pos + 1 + length], pos + 1 + length
            out.append(("T", length, raw))
        pos += 1  # the ';' between entries
    return out


def copy_select(job, plan, table_sql, targets=None, where="", args=None, order="", freeze=False, join=""):
    """COPY the rows of ``plan``'s MySQL table (filtered by ``join`` and ``where``) into ``table_sql``.

    Returns (rows copied, zero dates nulled).  Values too large for one packet follow in
    pieces.  A value PostgreSQL refuses becomes a ValueRejected naming the table, column and
    primary key of the MySQL row.
    """
    targets = plan.columns if targets is None else targets
    export = Export(plan, targets, job.source.max_packet)
    zeros, deferred = 0, []
    progress = Progress(log, f"{plan.label}: copy")

    def chunks():
        nonlocal zeros
        for rows in job.source.stream(export.select(where, order, join), args, what=f"table {plan.label!r}"):
            if export.zeros:
                zeros += sum(r[-1] for r in rows)
            progress.add(len(rows))
            yield export.chunk(rows, deferred)

    stream = chunks()
    options = COPY_OPTIONS + (", FREEZE" if freeze else "")
    try:
        count = copy_in(job.pg, table_sql, [t.name for t in targets], stream, f"({options})")
        for value in deferred:
            read_in_pieces(job, plan, table_sql, value)
    except psycopg2.DataError as exc:
        raise diagnose(job, plan, exc) from exc
    except ChangedOnTheWay as exc:
        raise find_bad_value(job, plan) or exc from exc
    finally:
        stream.close()  # a COPY that stopped early drops the MySQL read now, instead of leaving it to drain
        progress.close()
    return count, zeros


def copy_keys(job, plan, table_sql):
    """COPY every key of the MySQL table into ``table_sql``; returns the number of keys.

    A single integer key is packed by MySQL, 20,000 keys a row (GROUP_CONCAT), which spares
    the driver 19,999 rows of work; other keys come one row each.
    """
    if len(plan.key) == 1 and plan.source.column(plan.key[0]).data_type in INT_TYPES:
        k = q(plan.key[0])
        statement = (f"SELECT GROUP_CONCAT({k} SEPARATOR '\\n') FROM {q(plan.source.name)} "
                     f"GROUP BY {k} DIV {KEY_BATCH}")
        chunks = (b"\n".join(r[0] for r in rows) + b"\n"
                  for rows in job.source.stream(statement, what=f"table {plan.label!r}: keys"))
    else:
        export = Export(plan, plan.key_targets(), job.source.max_packet)
        chunks = (export.chunk(rows, []) for rows in job.source.stream(export.select(), what=f"table {plan.label!r}"))
    try:
        return copy_in(job.pg, table_sql, plan.pg_key(), chunks, f"({COPY_OPTIONS})")
    finally:
        chunks.close()


# ---------------------------------------------------------------- large values


def read_in_pieces(job, plan, table_sql, value):
    """Read one large value in pieces into a temporary table, then set it in the copied row."""
    t, m = value.target, value.target.mapping
    where, args = mysql_key_match(plan, value.key)
    piece_size = min(PIECE_BYTES, job.source.max_packet - min(PACKET_RESERVE, job.source.max_packet // 4))
    expression = f"SUBSTRING({m.piece or m.value}, %s, {piece_size})"
    statement = f"SELECT {expression} FROM {q(plan.source.name)} WHERE {where}"
    what = f"table {plan.label!r}, column {t.column!r}"
    execute(job, sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (seq integer, piece bytea) ON COMMIT DROP")
            .format(ident(PIECES)))
    execute(job, sql.SQL("TRUNCATE {}").format(ident(PIECES)))

    def pieces():
        offset, seq = 1, 0
        while True:
            rows = job.source.execute_raw(statement, (offset, *args), what=what)
            if not rows or rows[0][0] is None:
                raise TableError(f"{what}: the row {describe_key(plan, value.key)} could not be read again "
                                 "for its large value")
            data = rows[0][0]
            yield b"%d\t\\\\x" % seq
            for start in range(0, len(data), HEX_CHUNK):  # hex text in small chunks: memory stays near one piece
                yield data[start:start + HEX_CHUNK].hex().encode()
            yield b"\n"
            if len(data) < piece_size:
                return
            offset, seq = offset + piece_size, seq + 1

    copy_in(job.pg, ident(PIECES), ["seq", "piece"], pieces())
    assembled = sql.SQL(m.assemble.replace("{}", "(SELECT string_agg(piece, ''::bytea ORDER BY seq) FROM {pieces})"))
    match = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(ident(k)) for k in plan.pg_key())
    execute(job, sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(
        table_sql, ident(t.name), assembled.format(pieces=ident(PIECES)), match), pg_key_values(plan, value.key))
    log.info("%s: %s: a value too large for one MySQL packet was read in pieces", plan.label, t.column)


def key_kinds(plan):
    """Per key column: how its COPY text becomes a lookup value ('int', 'text', 'bytes', 'decimal', 'plain')."""
    kinds = []
    for name in plan.key:
        col = plan.source.column(name)
        t = col.data_type
        kinds.append("int" if t in INT_TYPES else "bytes" if t in ("binary", "varbinary") else
                     "text" if t in ("char", "varchar", "enum", "set") else
                     "decimal" if t == "decimal" else
                     "plain" if t in ("date", "datetime", "timestamp", "time", "year") else None)
        if kinds[-1] is None:
            raise TableError(f"table {plan.label!r}: a value is too large for one MySQL packet, and its key column "
                             f"{name!r} ({col.column_type}) cannot be used to read it in pieces")
    return kinds


def key_values(plan, key_fields):
    """Python values of a row's key from its COPY fields."""
    values = []
    for kind, field in zip(key_kinds(plan), key_fields):
        if kind == "text":
            values.append(field[1:-1].replace(QUOTE + QUOTE, QUOTE).decode("utf-8"))
        elif kind == "bytes":
            values.append(bytes.fromhex(field[2:].decode()))
        elif kind == "int":
            values.append(int(field))
        else:
            values.append(field.decode().removesuffix("+00"))
    return values


def mysql_key_match(plan, key_fields):
    """(WHERE clause, args) finding the row in MySQL, using the key's index."""
    parts = []
    for name, kind in zip(plan.key, key_kinds(plan)):
        col = plan.source.column(name)
        value = f"CAST(%s AS DECIMAL({col.precision},{col.scale}))" if kind == "decimal" else "%s"
        parts.append(f"{q(name)} = {value}")
    return " AND ".join(parts), key_values(plan, key_fields)


def pg_key_values(plan, key_fields):
    values = key_values(plan, key_fields)
    return [v if kind != "plain" or plan.source.column(n).data_type != "timestamp" else v + "+00"
            for v, kind, n in zip(values, key_kinds(plan), plan.key)]


def describe_key(plan, key_fields):
    return ", ".join(f"{n}={v}" for n, v in zip(plan.key, key_values(plan, key_fields)))


# ---------------------------------------------------------------- errors and helpers


CONTEXT_COLUMN = re.compile(r", column (.+?)(?::|$)", re.M)


def diagnose(job, plan, exc):
    """Turn PostgreSQL's refusal into an error naming column and MySQL primary key."""
    context = exc.diag.context or ""
    found = CONTEXT_COLUMN.search(context)
    explained = find_bad_value(job, plan, found.group(1) if found else None)
    if explained:
        return explained
    where = f" ({context.splitlines()[0]})" if context else ""
    return ValueRejected(f"table {plan.label!r}: PostgreSQL refused a value: "
                         f"{exc.diag.message_primary}{where}")


def find_bad_value(job, plan, column=None):
    """A ValueRejected naming column, reason and key of a row holding a value that cannot arrive as it
    is (searched with the mappings' ``reject`` predicates), or None."""
    job.source.reconnect()  # the streaming read was cut off mid-result
    for target in plan.columns:
        if target.mapping.reject and (column is None or target.name == column):
            key = job.source.find_rejected(plan.source.name, plan.key, target.mapping.reject)
            if key:
                return ValueRejected(f"table {plan.label!r}: column {target.column!r} {target.mapping.reason} "
                                     f"(row {key})")
    return None


def execute(job, statement, args=None):
    with job.pg.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else None


def ddl(job, plan, statement):
    """Run one DDL statement of a table's step; name the PostgreSQL objects that block it."""
    try:
        execute(job, statement)
    except psycopg2.errors.FeatureNotSupported as exc:  # a view or policy uses a column whose type changes
        raise TableError(f"table {plan.label!r}: {exc.diag.message_primary} ({exc.diag.message_detail or ''}): "
                         "drop the object and create it again after the next sync") from exc


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
