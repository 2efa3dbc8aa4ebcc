r"""MySQL column → PostgreSQL type, plus the MySQL expression that emits its COPY text.

MySQL itself formats every value as PostgreSQL COPY text (``\N`` for NULL, backslash,
tab, newline and CR escaped) inside the SELECT; Python only joins the lines.  That is
what makes the copy fast: no per-field Python work.

Every mapping holds all values of the MySQL type.  Values PostgreSQL cannot hold as
mapped are never changed silently: ``reject`` is a MySQL predicate that finds such rows,
used to name the column and primary key when COPY refuses a value.  The documented
lossy-free exceptions: zero dates (and dates with a zero month or day) become NULL and
are counted; FLOAT is sent as the exact double of its single-precision value.

The SQL literals below assume the session sql_mode set in source.py (no
NO_BACKSLASH_ESCAPES), so ``'\\N'`` is backslash-N.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TableError

NULL = r"'\\N'"


def q(name: str) -> str:
    """Quote a MySQL identifier (backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def escape_text(expr: str) -> str:
    r"""COPY-escape a string expression: \ → \\, tab → \t, LF → \n, CR → \r (as UTF-8 bytes).

    The REPLACEs run on the UTF-8 bytes (``USING binary``): a byte-wise search, a third
    faster than a collation-aware one, and exact because these four ASCII bytes never
    occur inside a multi-byte UTF-8 character.
    """
    return (rf"REPLACE(REPLACE(REPLACE(REPLACE(CONVERT(CONVERT({expr} USING utf8mb4) USING binary), "
            r"'\\', '\\\\'), '\t', '\\t'), '\n', '\\n'), '\r', '\\r')")


@dataclass(frozen=True)
class Mapping:
    pg_type: str             # as PostgreSQL's format_type() prints it
    export: str              # MySQL expression producing COPY text (never NULL)
    reject: str | None = None   # MySQL predicate: a value PostgreSQL will refuse
    reason: str = ""            # what is wrong with such a value
    zero_date: str | None = None  # MySQL 0/1 expression: this row's value is a zero date


INT_TYPES = {  # data_type: (signed, unsigned)
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "integer": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20,0)"),
}
TEXT_TYPES = {"tinytext", "text", "mediumtext", "longtext", "enum", "set"}
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
GEOMETRY_TYPES = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                  "multipolygon", "geometrycollection", "geomcollection"}
NUL_IN_TEXT = "INSTR(CONVERT({c} USING binary), CHAR(0)) > 0"
# Charsets whose every stored character has a Unicode equivalent (MySQL's latin1 is cp1252 with
# all 256 bytes mapped).  Others (sjis, gbk, big5, ...) can hold characters that CONVERT turns into '?'.
UNICODE_SAFE = {None, "utf8mb4", "utf8mb3", "utf8", "latin1", "binary"}


@dataclass(frozen=True)
class Options:
    tinyint1_as_boolean: bool = True
    postgis: bool = False        # the target database has PostGIS
    wkt_long_lat: bool = False   # MySQL 8: ST_AsText in geographic SRSs defaults to latitude first


def map_column(col, opts=Options()) -> Mapping:
    """Choose the PostgreSQL type and export expression for one MySQL column."""
    c, t = q(col.name), col.data_type
    for mapper in (_numeric, _textual, _temporal, _other):
        found = mapper(col, c, t, opts)
        if found:
            return found
    raise TableError(f"column {col.name!r} has type {col.column_type!r}, which this service cannot copy")


def _wrap(value_expr, pg_type, nullable=True, **kw):
    """The Mapping; ``\\N`` for NULL unless the value can never be NULL (IFNULL costs per row)."""
    return Mapping(pg_type, f"IFNULL({value_expr}, {NULL})" if nullable else value_expr, **kw)


def _numeric(col, c, t, opts):
    unsigned = "unsigned" in col.column_type
    if t == "tinyint" and col.column_type.startswith("tinyint(1)") and not unsigned and opts.tinyint1_as_boolean:
        return _wrap(c, "boolean", col.nullable, reject=f"{c} NOT IN (0, 1)",
                     reason="is not 0 or 1 (set MYSQL_TINYINT1_AS_BOOLEAN=false to copy as smallint)")
    if t in INT_TYPES:
        return _wrap(c, INT_TYPES[t][unsigned], col.nullable)
    if t == "decimal":
        return _wrap(c, f"numeric({col.precision},{col.scale})", col.nullable)
    if t == "float":  # the exact double of the single-precision value; MySQL prints FLOAT to 6 digits only
        return _wrap(f"({c} + 0e0)", "real", col.nullable)
    if t in ("double", "real"):
        return _wrap(c, "double precision", col.nullable)
    if t == "bit":
        return _wrap(f"LPAD(BIN({c}), {col.precision}, '0')", f"bit({col.precision})", col.nullable)
    if t == "year":
        return _wrap(f"({c} + 0)", "smallint", col.nullable)
    return None


def _textual(col, c, t, opts):
    nul = NUL_IN_TEXT.format(c=c)
    text_type = (f"character varying({col.char_length})" if t in ("char", "varchar")
                 else "text" if t in TEXT_TYPES else None)
    if text_type and col.charset not in UNICODE_SAFE:
        return _lossy_charset(col, c, text_type, nul)
    if col.is_json:
        return _wrap(escape_text(c), "jsonb", col.nullable, reject=f"{nul} OR INSTR({c}, '\\\\u0000') > 0",
                     reason="contains a NUL character, which PostgreSQL jsonb cannot hold")
    if text_type:
        return _wrap(escape_text(c), text_type, col.nullable, reject=nul,
                     reason="contains a NUL byte, which PostgreSQL text cannot hold")
    if t in BINARY_TYPES:
        return _wrap(rf"CONCAT('\\\\x', HEX({c}))", "bytea", col.nullable)
    return None


def _lossy_charset(col, c, pg_type, nul):
    """Text in a charset with characters Unicode lacks: a row holding one sends a NUL byte instead,
    so PostgreSQL refuses the COPY and the table fails naming column and key (never a silent '?').
    A lost character shows as one more '?' after CONVERT than before (a round trip is no test:
    sjis 0x5C becomes U+005C, which converts back to 0x815F)."""
    if not re.fullmatch(r"[a-z0-9_]+", col.charset):
        raise TableError(f"column {col.name!r} has charset {col.charset!r}, which this service cannot read")
    converted = f"CONVERT({c} USING utf8mb4)"  # a character without equivalent becomes '?'
    lossy = (f"LENGTH({converted}) - LENGTH(REPLACE({converted}, '?', '')) "
             f"<> LENGTH({c}) - LENGTH(REPLACE({c}, '?', ''))")
    return _wrap(f"IF({lossy}, CHAR(0), {escape_text(c)})", pg_type, col.nullable, reject=f"{lossy} OR {nul}",
                 reason=f"holds a character of charset {col.charset} that has no Unicode equivalent, or a NUL byte")


def _temporal(col, c, t, opts):
    if t not in ("date", "datetime", "timestamp"):
        if t == "time":
            return _wrap(c, "interval", col.nullable)
        return None
    # A TIMESTAMP is seconds since 1970, so its only zero date is the all-zero value.
    zero = f"({c} = 0)" if t == "timestamp" else f"(MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0)"
    value = f"CASE WHEN {zero} THEN NULL ELSE {c} END"
    fsp = col.datetime_precision or 0
    if t == "date":
        pg_type = "date"
    elif t == "datetime":
        pg_type = f"timestamp({fsp}) without time zone"
    else:
        pg_type, value = f"timestamp({fsp}) with time zone", f"CONCAT({value}, '+00')"
    return _wrap(value, pg_type, zero_date=f"IFNULL({zero}, 0)", reject=f"YEAR({c}) = 0 AND NOT {zero}",
                 reason="has year 0, which PostgreSQL dates cannot hold")


def _other(col, c, t, opts):
    if t == "json":
        return _textual(col.with_json(), c, t, opts)
    if t in GEOMETRY_TYPES:
        # PostGIS and WKT readers expect x = longitude; MySQL 8 must be told, MariaDB has no option
        wkt = f"ST_AsText({c}, 'axis-order=long-lat')" if opts.wkt_long_lat else f"ST_AsText({c})"
        if opts.postgis:
            return _wrap(f"CONCAT('SRID=', ST_SRID({c}), ';', {wkt})", "geometry")
        return _wrap(escape_text(wkt), "text")
    return None
