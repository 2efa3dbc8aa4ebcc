"""A row's key as the same bytes on both servers: buckets for diff mode, key-set digests for deletes.

MySQL and PostgreSQL order and compare keys differently (case- and accent-insensitive
collations, legacy charsets), but both can write a key as text and hash it.  For each key
column type listed here, ``mysql_text`` and ``pg_text`` produce identical bytes for the same
key value, so a row's bucket and its key hash are the same on both sides and no comparison
or ordering of keys across servers is ever needed:

    bucket     a single integer key: key MOD n; any other key: 32 bits of SHA-256(key text) MOD n
    key hash   64 bits of SHA-256(key text): XORed over a table, the digest of its key set
"""

from __future__ import annotations

from psycopg2 import sql

from .types import q

TEXT = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set")
INTEGERS = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")
HASHABLE = INTEGERS + TEXT + ("decimal", "binary", "varbinary", "date", "datetime", "timestamp", "year")
TAB = "x'09'"


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


def mysql_bucket(plan, buckets):
    if single_integer(plan):
        return f"MOD({q(plan.key[0])}, {buckets})"
    return f"MOD(CONV(LEFT(SHA2({mysql_text(plan)}, 256), 8), 16, 10), {buckets})"


def pg_bucket(plan, buckets, alias):
    if single_integer(plan):
        column = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(plan.pg_key()[0]))
        return sql.SQL("mod({}, {})::integer").format(column, sql.Literal(buckets))
    return sql.SQL("mod(('x' || left(encode(sha256({}), 'hex'), 8))::bit(32)::bigint, {})::integer").format(
        pg_text(plan, alias), sql.Literal(buckets))


def mysql_key_hash(plan):
    """MySQL expression: 64 bits of SHA-256 of the key (an unsigned BIGINT; BIT_XOR it over a table)."""
    return f"CONV(LEFT(SHA2({mysql_text(plan)}, 256), 16), 16, 10)"


def pg_key_hash(plan, alias):
    """PostgreSQL expression: the same 64 bits (as a signed bigint; mask with 2**64 - 1 in Python)."""
    return sql.SQL("('x' || left(encode(sha256({}), 'hex'), 16))::bit(64)::bigint").format(pg_text(plan, alias))


def unsigned(value):
    return int(value) & ((1 << 64) - 1)
