"""A row's key as the same bytes on both servers: buckets for diff mode, key-set digests for deletes.

MySQL and PostgreSQL order and compare keys differently (case- and accent-insensitive
collations, legacy charsets), but both can write a key as text and hash it.  For each key
column type listed here, ``mysql_text`` and ``pg_text`` produce identical bytes for the same
key value, so a row's bucket and its key hash are the same on both sides and no comparison
or ordering of keys across servers is ever needed:

    bucket     ranges of the key's first column when it is an integer; else MOD(key, n) for a single
               integer key, or 32 bits of SHA-256(key text) MOD n (see Bucketing)
    key hash   64 bits of SHA-256(key text): XORed over a table, the digest of its key set
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from .types import q

TEXT = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set")
INTEGERS = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")
HASHABLE = INTEGERS + TEXT + ("decimal", "binary", "varbinary", "date", "datetime", "timestamp", "year")
TAB = "x'09'"
JOINED_RANGES = 5000  # key ranges MySQL reads as a join of (low, high) pairs; more: one scan
RANGE_LOW, RANGE_HIGH = "`_datasync_low`", "`_datasync_high`"


def unsupported(plan):
    """The key columns whose values cannot be written identically on both servers."""
    return [c for c in plan.key if plan.source.column(c).data_type not in HASHABLE]


def single_integer(plan):
    return len(plan.key) == 1 and plan.source.column(plan.key[0]).data_type in INTEGERS


def mysql_text(plan):
    """MySQL expression: the key's bytes (columns joined by a tab)."""
    parts = []
    for name in plan.key:
        col = plan.source.column(name)
        parts.append(q(name) if col.data_type in ("binary", "varbinary") else plan.target_of(name).mapping.value)
    return parts[0] if len(parts) == 1 else f"CONCAT_WS({TAB}, {', '.join(parts)})"


def pg_text(plan, alias):
    """PostgreSQL expression (bytea): the same bytes from the copy's key columns."""
    parts = []
    for name in plan.key:
        col, target = plan.source.column(name), plan.target_of(name)
        column = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(target.name))
        parts.append(_pg_part(col, target, column))
    return sql.SQL(" || '\\x09'::bytea || ").join(parts)


def _pg_part(col, target, column):
    t = col.data_type
    if t in ("binary", "varbinary"):
        return column
    if target.mapping.pg_type == "boolean":  # a TINYINT(1) key: MySQL writes 0 or 1
        return sql.SQL("convert_to(({}::integer)::text, 'UTF8')").format(column)
    if t in ("datetime", "timestamp"):
        fraction = f".FF{col.datetime_precision}" if col.datetime_precision else ""
        moment = column if t == "datetime" else sql.SQL("({} AT TIME ZONE 'UTC')").format(column)
        suffix = "" if t == "datetime" else " || '+00'"
        return sql.SQL("convert_to(to_char({}, {}){}, 'UTF8')").format(
            moment, sql.Literal(f"YYYY-MM-DD HH24:MI:SS{fraction}"), sql.SQL(suffix))
    return sql.SQL("convert_to({}::text, 'UTF8')").format(column)


def ranged(plan):
    """Key ranges can make the buckets: the key's first column is an integer (not a TINYINT(1) boolean)."""
    col = plan.source.column(plan.key[0]) if plan.key else None
    return col is not None and col.data_type in INTEGERS and plan.target_of(col.name).mapping.pg_type != "boolean"


@dataclass(frozen=True)
class Bucketing:
    """How rows are put in buckets, from their key alone.

    ``width`` > 0: ranges of the key's first (integer) column, ``first DIV width`` (truncated toward zero
    on both servers), so the rows of a changed bucket are re-read, and its deleted keys found, through the
    key's index.  Else ``count`` hash buckets: ``MOD(key, count)`` for a single integer key, or of 32 bits
    of SHA-256 of the key's text; their rows are found by a scan.
    """

    count: int = 0
    width: int = 0

    def describe(self):
        return f"key ranges of {self.width}" if self.width else f"{self.count} hash buckets"

    def mysql(self, plan):
        if self.width:
            return f"({q(plan.key[0])} DIV {self.width})"
        if single_integer(plan):
            return f"MOD({q(plan.key[0])}, {self.count})"
        return f"MOD(CAST(CONV(LEFT(SHA2({mysql_text(plan)}, 256), 8), 16, 10) AS UNSIGNED), {self.count})"

    def pg(self, plan, alias):
        first = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(plan.pg_key()[0]))
        numeric = plan.target_of(plan.key[0]).mapping.pg_type.startswith("numeric")
        if self.width:
            return sql.SQL("div({}, {})::bigint" if numeric else "({} / {})::bigint").format(
                first, sql.Literal(self.width))
        if single_integer(plan):
            return sql.SQL("mod({}, {})::bigint").format(first, sql.Literal(self.count))
        return sql.SQL("mod(('x' || left(encode(sha256({}), 'hex'), 8))::bit(32)::bigint, {})").format(
            pg_text(plan, alias), sql.Literal(self.count))

    def ranges(self, buckets):
        """[(low, high)] of the key's first column covering ``buckets`` (consecutive ones merged)."""
        def low(b):
            return b * self.width if b > 0 else b * self.width - self.width + 1 if b < 0 else -(self.width - 1)

        def high(b):
            return b * self.width + self.width - 1 if b > 0 else b * self.width if b < 0 else self.width - 1

        out = []
        for b in sorted(buckets):
            if out and b == out[-1][1] + 1:
                out[-1][1] = b
            else:
                out.append([b, b])
        return [(low(first), high(last)) for first, last in out]

    def mysql_rows(self, plan, buckets):
        """(join, where): how MySQL reads the rows of ``buckets``.

        Key ranges are joined as a derived table of (low, high) pairs, so each range is one scan
        of the key's index; a WHERE of ORed ranges would be tested whole against every row read
        (MariaDB and MySQL both do: 0.9 s instead of 0.07 s for 900 ranges).  Past JOINED_RANGES
        ranges, or for hash buckets, one scan with an IN list (a binary search per row)."""
        ranges = self.ranges(buckets) if self.width else []
        if ranges and len(ranges) <= JOINED_RANGES:
            pairs = " UNION ALL ".join(f"SELECT {lo} AS {RANGE_LOW}, {hi} AS {RANGE_HIGH}" if i == 0 else
                                       f"SELECT {lo}, {hi}" for i, (lo, hi) in enumerate(ranges))
            return (f" JOIN ({pairs}) AS {q('_datasync_ranges')} ON {q(plan.key[0])} BETWEEN {RANGE_LOW} "
                    f"AND {RANGE_HIGH}", "")
        return "", f"{self.mysql(plan)} IN ({', '.join(map(str, sorted(buckets)))})"

    def pg_rows(self, plan, buckets, alias):
        """(using, where): how PostgreSQL finds the copy's rows of ``buckets`` (alias ``alias``).

        Key ranges are joined from two arrays, each range one scan of the key's index (ORed ranges
        would be tested whole against every row); hash buckets are one scan."""
        if self.width:
            first = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(plan.pg_key()[0]))
            ranges = self.ranges(buckets)
            numeric = plan.target_of(plan.key[0]).mapping.pg_type.startswith("numeric")
            if not numeric:  # a signed key's last range may reach past bigint, where no value lies: cut off
                ranges = [(max(lo, -(1 << 63)), min(hi, (1 << 63) - 1)) for lo, hi in ranges]
            lows, highs = zip(*ranges)
            using = sql.SQL("unnest({}::{t}, {}::{t}) AS _datasync_ranges (low, high)").format(
                sql.Literal(list(lows)), sql.Literal(list(highs)), t=sql.SQL("numeric[]" if numeric else "bigint[]"))
            return using, sql.SQL("{} BETWEEN _datasync_ranges.low AND _datasync_ranges.high").format(first)
        return None, sql.SQL("{} = ANY({})").format(self.pg(plan, alias), sql.Literal(sorted(buckets)))


def mysql_key_hash(plan):
    """MySQL expression: 64 bits of SHA-256 of the key (an unsigned BIGINT; BIT_XOR it over a table)."""
    return f"CONV(LEFT(SHA2({mysql_text(plan)}, 256), 16), 16, 10)"


def pg_key_hash(plan, alias):
    """PostgreSQL expression: the same 64 bits (as a signed bigint; mask with 2**64 - 1 in Python)."""
    return sql.SQL("('x' || left(encode(sha256({}), 'hex'), 16))::bit(64)::bigint").format(pg_text(plan, alias))


def unsigned(value):
    return int(value) & ((1 << 64) - 1)
