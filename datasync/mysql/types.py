r"""MySQL column → PostgreSQL type, plus the MySQL expression that emits its COPY field.

MySQL itself formats every value for PostgreSQL's COPY (CSV format, tab-separated, QUOTE
``\x01``) inside the SELECT; Python only joins the lines.  That is what makes the copy fast:
no per-field Python work.  The CSV flavour is chosen because it needs no escaping at all: a
text value is sent between two QUOTE bytes (tabs, newlines and backslashes inside are
literal), an unquoted empty field is NULL.  MySQL only checks, with one linear INSTR, that a
text value holds no QUOTE byte; the rare value that does is sent raw beside the line and
framed by Python (copy.py).  No statement ever runs REPLACE over a value, whose cost on
MariaDB grows with the square of the value's size.

Every mapping holds all values of the MySQL type.  Values PostgreSQL cannot hold as mapped
are never changed silently: ``reject`` is a MySQL predicate that finds such rows, used to
name the column and primary key when COPY refuses a value.  The documented exceptions: zero
dates (and dates with a zero month or day) become NULL and are counted; FLOAT is sent as the
exact double of its single-precision value.

The SQL literals below assume the session sql_mode set in source.py (no
NO_BACKSLASH_ESCAPES), so ``'\\x'`` is backslash-x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TableError

QUOTE = b"\x01"  # COPY ... (FORMAT csv, QUOTE E'\x01'): a byte text practically never holds
QUOTE_SQL = "x'01'"


def q(name: str) -> str:
    """Quote a MySQL identifier (backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Mapping:
    pg_type: str                 # as PostgreSQL's format_type() prints it
    value: str                   # MySQL expression: the field's bytes (NULL when the value is NULL)
    quoted: bool = False         # text: sent between QUOTE bytes
    size: str | None = None      # large values: MySQL expression bounding the field's bytes
    piece: str | None = None     # large values: MySQL expression of the bytes read in pieces (default: value)
    assemble: str = "{}"         # PostgreSQL expression turning the bytes of a value read in pieces into the type
    placeholder: bytes = b""     # CSV field standing in for a value still to be read in pieces
    reject: str | None = None    # MySQL predicate: a value PostgreSQL will refuse
    reason: str = ""             # what is wrong with such a value
    zero_date: str | None = None  # MySQL 0/1 expression: this row's value is a zero date

    @property
    def large(self):
        return self.size is not None


INT_TYPES = {  # data_type: (signed, unsigned)
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "integer": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20,0)"),
}
TEXT_TYPES = {"tinytext", "text", "mediumtext", "longtext", "enum", "set"}
LARGE_TEXT = {"text", "mediumtext", "longtext", "json"}
BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
LARGE_BINARY = {"blob", "mediumblob", "longblob"}
GEOMETRY_TYPES = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                  "multipolygon", "geometrycollection", "geomcollection"}
NUL_IN_TEXT = "INSTR(CONVERT({c} USING binary), CHAR(0)) > 0"
UTF8 = {"utf8mb4", "utf8mb3", "utf8"}  # stored bytes are already what PostgreSQL gets
# Charsets whose every stored character has a Unicode equivalent (MySQL's latin1 is cp1252 with
# all 256 bytes mapped).  Others (sjis, gbk, big5, ...) can hold characters that CONVERT turns into '?'.
UNICODE_SAFE = UTF8 | {None, "latin1", "binary", "ascii"}
WKT_PER_WKB_BYTE = 4  # a WKT text is at most about 3.1 characters per byte of its WKB


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


def _numeric(col, c, t, opts):
    unsigned = "unsigned" in col.column_type
    if t == "tinyint" and col.column_type.startswith("tinyint(1)") and not unsigned and opts.tinyint1_as_boolean:
        return Mapping("boolean", c, reject=f"{c} NOT IN (0, 1)",
                       reason="is not 0 or 1 (set MYSQL_TINYINT1_AS_BOOLEAN=false to copy as smallint)")
    if t in INT_TYPES:
        return Mapping(INT_TYPES[t][unsigned], c)
    if t == "decimal":
        return Mapping(f"numeric({col.precision},{col.scale})", c)
    if t == "float":  # the exact double of the single-precision value; MySQL prints FLOAT to 6 digits only
        return Mapping("real", f"({c} + 0e0)")
    if t in ("double", "real"):
        return Mapping("double precision", c)
    if t == "bit":
        return Mapping(f"bit({col.precision})", f"LPAD(BIN({c}), {col.precision}, '0')")
    if t == "year":
        return Mapping("smallint", f"({c} + 0)")
    return None


def _textual(col, c, t, opts):
    text_type = (f"character varying({col.char_length})" if t in ("char", "varchar")
                 else "text" if t in TEXT_TYPES else None)
    if col.is_json:
        return _text(col, c, "jsonb", reject=f"{NUL_IN_TEXT.format(c=c)} OR INSTR({c}, '\\\\u0000') > 0",
                     reason="contains a NUL character, which PostgreSQL jsonb cannot hold")
    if text_type and col.charset not in UNICODE_SAFE:
        return _lossy_charset(col, c, text_type)
    if text_type:
        return _text(col, c, text_type)
    if t in BINARY_TYPES:
        size = f"(2 * LENGTH({c}) + 2)" if t in LARGE_BINARY else None
        return Mapping("bytea", f"CONCAT('\\\\x', HEX({c}))", size=size, piece=c, placeholder=b"\\x")
    return None


def _bytes(col, c):
    """The UTF-8 bytes of a text value (UTF-8 and ASCII columns need no conversion: it would only copy;
    a byte above 127 in an ascii column then reaches PostgreSQL, which refuses it: never a silent '?')."""
    if col.charset in UTF8 or col.charset == "ascii":
        return f"CONVERT({c} USING binary)"
    return f"CONVERT(CONVERT({c} USING utf8mb4) USING binary)"


def _text(col, c, pg_type, reject=None, reason=None):
    """A text value between QUOTE bytes; TEXT, MEDIUMTEXT, LONGTEXT and JSON are read in pieces when large."""
    if col.data_type == "json":  # MySQL's binary JSON: its text is computed, escapes make it up to 6x larger
        size = f"(6 * JSON_STORAGE_SIZE({c}) + 64)"
    else:  # UTF-8 from a legacy charset takes at most 3 bytes per stored byte (cp1252's euro sign)
        size = f"LENGTH({c})" if col.charset in UTF8 or col.charset == "ascii" else f"(3 * LENGTH({c}))"
    if reject is None:
        reject, reason = NUL_IN_TEXT.format(c=c), "contains a NUL byte, which PostgreSQL text cannot hold"
    if col.charset == "ascii":  # a legacy table written without strict mode can hold bytes above 127
        reject += f" OR CONVERT({c} USING binary) <> CONVERT(CONVERT({c} USING utf8mb4) USING binary)"
        reason = "contains a NUL byte, or a byte above 127 that its ascii charset cannot hold"
    assemble = "convert_from({}, 'UTF8')" + ("::jsonb" if pg_type == "jsonb" else "")
    return Mapping(pg_type, _bytes(col, c), quoted=True, size=size if col.data_type in LARGE_TEXT else None,
                   assemble=assemble, placeholder=QUOTE + (b"null" if pg_type == "jsonb" else b"") + QUOTE,
                   reject=reject, reason=reason)


def _lossy_charset(col, c, pg_type):
    """Text in a charset with characters Unicode lacks: a row holding one sends a NUL byte instead,
    so PostgreSQL refuses the COPY and the table fails naming column and key (never a silent '?').
    CONVERT turns a character without equivalent into '?', so once the value's own '?' are made
    '!' (a same-length REPLACE: linear on MariaDB too, whose REPLACE is quadratic when the length
    changes), any '?' left after CONVERT is a lost character.  A round trip is no test: sjis 0x5C
    becomes U+005C, which converts back to 0x815F."""
    if not re.fullmatch(r"[a-z0-9_]+", col.charset):
        raise TableError(f"column {col.name!r} has charset {col.charset!r}, which this service cannot read")
    lossy = f"INSTR(CONVERT(REPLACE({c}, '?', '!') USING utf8mb4), '?') > 0"
    mapping = _text(col, c, pg_type)
    return Mapping(pg_type, f"IF({lossy}, CHAR(0), {mapping.value})", quoted=True, size=mapping.size,
                   assemble=mapping.assemble, placeholder=mapping.placeholder,
                   reject=f"{lossy} OR {NUL_IN_TEXT.format(c=c)}",
                   reason=f"holds a character of charset {col.charset} that has no Unicode equivalent, or a NUL byte")


def _temporal(col, c, t, opts):
    if t not in ("date", "datetime", "timestamp"):
        if t == "time":
            return Mapping("interval", c)
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
    return Mapping(pg_type, value, zero_date=f"IFNULL({zero}, 0)", reject=f"YEAR({c}) = 0 AND NOT {zero}",
                   reason="has year 0, which PostgreSQL dates cannot hold")


def _other(col, c, t, opts):
    if t == "json":
        return _textual(col.with_json(), c, t, opts)
    if t in GEOMETRY_TYPES:
        # PostGIS and WKT readers expect x = longitude; MySQL 8 must be told, MariaDB has no option
        wkt = f"ST_AsText({c}, 'axis-order=long-lat')" if opts.wkt_long_lat else f"ST_AsText({c})"
        size = f"({WKT_PER_WKB_BYTE} * LENGTH({c}) + 64)"
        if opts.postgis:
            return Mapping("geometry", f"CONCAT('SRID=', ST_SRID({c}), ';', {wkt})", size=size,
                           assemble="convert_from({}, 'UTF8')::geometry", placeholder=b"GEOMETRYCOLLECTION EMPTY")
        return Mapping("text", wkt, size=size, assemble="convert_from({}, 'UTF8')",
                       placeholder=b"GEOMETRYCOLLECTION EMPTY")
    return None
