"""From bytes to rows: line splitting, decoding, the five formats, and COPY text.

``Lines`` turns downloaded chunks into complete decoded lines (a trailing line without its
newline waits for the next run).  A ``Parser`` turns one line into the fields of a row;
``RowWriter`` maps fields to the table's columns (machine_id, logged_at, level, message,
fields) and writes PostgreSQL COPY text.  A line that cannot be parsed raises ``Reject``
with a reason; it goes to the rejects table and the file carries on.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import posixpath
import re
import zlib
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from operator import add

from .remote import TransferError

COPY_NULL = "\\N"
REJECT_KEEP = 65536  # characters of an over-long line kept in the rejects table
DELIMITERS = (",", ";", "\t", "|")
MACHINE_KEYS = ("machine_id", "machine", "machineid", "machine_name", "host", "hostname", "device", "device_id",
                "station")
TIME_KEYS = ("timestamp", "@timestamp", "ts", "time", "datetime", "date_time", "logged_at", "log_time", "eventtime",
             "event_time", "date")
LEVEL_KEYS = ("level", "severity", "loglevel", "log_level", "lvl", "priority")
MESSAGE_KEYS = ("message", "msg", "text", "event", "description")
TIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M", "%Y/%m/%d %H:%M:%S",
                "%Y/%m/%d %H:%M:%S.%f", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S.%f", "%d/%b/%Y:%H:%M:%S %z",
                "%a %b %d %H:%M:%S %Y", "%b %d %Y %H:%M:%S", "%d-%b-%Y %H:%M:%S", "%Y%m%d %H%M%S")
TEXT_LINE = re.compile(
    r"(?P<timestamp>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d(?:[.,]\d+)?|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?)"
    r"\s*[|;,]?\s*(?:\[?(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRITICAL|ALARM)\]?:?(?:\s+|$))?"
    r"(?P<message>.*)", re.IGNORECASE | re.DOTALL)


class Reject(Exception):  # noqa: N818 - a verdict on a line, not an error of the service
    """This line cannot be parsed; ``reason`` says why."""


class Bad:
    """A line that failed before parsing (bytes, length); carries its reason and printable text."""

    __slots__ = ("reason", "text")

    def __init__(self, reason, text):
        self.reason, self.text = reason, text


# ---------------------------------------------------------------- bytes -> lines


def gunzip(chunks, path):
    """Decompress a (possibly multi-member) gzip stream chunk by chunk, with bounded output."""
    inflater, fed = zlib.decompressobj(wbits=47), False
    try:
        for chunk in chunks:
            while chunk:
                fed = True
                out = inflater.decompress(chunk, 1 << 20)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
                if inflater.eof:  # another member may follow
                    chunk = inflater.unused_data + chunk
                    inflater, fed = zlib.decompressobj(wbits=47), False
    except zlib.error as exc:
        raise TransferError(f"not a valid gzip file: {exc}") from exc
    if fed:
        raise TransferError("gzip data ends early (file truncated or still being written)")


class Lines:
    """Complete lines from byte chunks, decoded, numbered; remembers the bytes they used.

    ``consumed`` counts bytes up to and including the last newline handed out, so the
    ledger's offset never covers a partial line.  Lines longer than ``max_bytes`` are cut
    (they become a Bad with their first characters) rather than buffered without bound.
    """

    def __init__(self, encoding, fallback, max_bytes, first_line_no=1):
        self.encoding, self.fallback, self.max_bytes = encoding, fallback, max_bytes
        self.line_no = first_line_no
        self.pending = b""
        self.consumed = 0
        self.skipping = None       # a Bad for the over-long line being skipped
        self.skipped = 0           # its bytes so far (counted in ``consumed`` once its newline arrives)
        self.fallback_lines = 0

    @property
    def complete(self):
        """True when every byte fed ended in a newline (no partial line held back)."""
        return not self.pending and self.skipping is None

    def feed(self, chunk):
        """Return [(line_no, str | Bad)] for the complete lines now available."""
        data = self.pending + chunk if self.pending else chunk
        out = []
        if self.skipping is not None:
            end = data.find(b"\n")
            if end < 0:
                self.pending, self.skipped = b"", self.skipped + len(data)
                return out
            out.append((self.line_no, self.skipping))
            self.line_no += 1
            self.consumed += self.skipped + end + 1
            self.skipping, self.skipped = None, 0
            data = data[end + 1:]
        end = data.rfind(b"\n")
        if end < 0:
            self._hold(data)
            return out
        self.consumed += end + 1
        out.extend(self.decode(data[:end]))
        self._hold(data[end + 1:])
        return out

    def _hold(self, data):
        self.pending = data
        if len(data) > self.max_bytes:
            text = data[:REJECT_KEEP].decode(self.encoding, "replace")
            self.skipping = Bad(f"line longer than {self.max_bytes} bytes (first {REJECT_KEEP} characters kept)",
                                _printable(text))
            self.skipped, self.pending = len(data), b""

    def finish(self):
        """The last line of a stream known to be complete (a gzip member), newline or not."""
        if self.skipping is not None:
            out, self.skipping = [(self.line_no, self.skipping)], None
            self.line_no += 1
        else:
            out = self.decode(self.pending) if self.pending else []
        self.consumed += len(self.pending) + self.skipped
        self.pending, self.skipped = b"", 0
        return out

    def decode(self, block):
        try:
            texts = block.decode(self.encoding).split("\n")
        except UnicodeDecodeError:
            texts = [self._decode_line(raw) for raw in block.split(b"\n")]
        if b"\r" in block:
            texts = [t[:-1] if type(t) is str and t.endswith("\r") else t for t in texts]
        if self.line_no == 1 and texts and type(texts[0]) is str:
            texts[0] = texts[0].removeprefix("\ufeff")
        if b"\0" in block:
            texts = [Bad("line contains NUL bytes (shown as \u2400)", _printable(t)) if type(t) is str and "\0" in t
                     else t for t in texts]
        first, self.line_no = self.line_no, self.line_no + len(texts)
        return list(zip(range(first, self.line_no), texts))

    def _decode_line(self, raw):
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            pass
        try:
            text = raw.decode(self.fallback)
            self.fallback_lines += 1
            return text
        except UnicodeDecodeError:
            return Bad(f"bytes not valid in {self.encoding} or {self.fallback}",
                       _printable(raw.decode(self.encoding, "replace").rstrip("\r")))


def _printable(text):
    return text.replace("\0", "\u2400")


# ---------------------------------------------------------------- lines -> fields


def sniff_format(relative_path, first_line):
    """LOG_FORMAT=auto: by extension, then by content (``{`` → jsonl, otherwise text)."""
    name = relative_path.lower().removesuffix(".gz")
    ext = posixpath.splitext(name)[1]
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "text"


def sniff_delimiter(header):
    """The candidate that splits the header most often (ties keep the first: , ; tab |)."""
    counts = [(header.count(d), -i, d) for i, d in enumerate(DELIMITERS)]
    best = max(counts)
    return best[2] if best[0] > 0 else ","


def header_names(fields):
    """Header cells as keys: stripped, empty ones named column_N, duplicates suffixed _2, _3..."""
    names, seen = [], set()
    for i, name in enumerate(fields, 1):
        name = name.strip() or f"column_{i}"
        base, n = name, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


class CsvParser:
    """One physical line is one record; a quoted field cannot span lines (it is rejected)."""

    fmt = "csv"

    def __init__(self, header):
        self.delimiter = sniff_delimiter(header)
        self.keys = tuple(header_names(self._split(header)))

    def _split(self, line):
        if '"' in line:
            try:
                return next(csv.reader([line], delimiter=self.delimiter, strict=True))
            except csv.Error as exc:
                raise Reject(f"CSV: {exc}") from None
        return line.split(self.delimiter)

    def fields(self, line):
        values = self._split(line)
        if len(values) != len(self.keys):
            raise Reject(f"CSV: expected {len(self.keys)} fields as in the header, got {len(values)}")
        return values


class JsonParser:
    fmt = "jsonl"
    keys = None

    def fields(self, line):
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise Reject(f"JSON: {exc}") from None
        if type(value) is not dict:
            raise Reject(f"JSON: expected an object, got {type(value).__name__}")
        if "\\u" in line:  # escapes PostgreSQL cannot store: NUL, unpaired surrogates
            text = json.dumps(value, ensure_ascii=False)
            if "\\u0000" in text:
                raise Reject("JSON: contains \\u0000, which PostgreSQL text and jsonb cannot hold")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise Reject("JSON: contains an unpaired UTF-16 surrogate escape") from None
        return value


class RegexParser:
    fmt = "regex"
    keys = None

    def __init__(self, pattern, required=True):
        self.match, self.required = pattern.match, required

    def fields(self, line):
        found = self.match(line)
        if found is None:
            if self.required:
                raise Reject("does not match LOG_REGEX")
            return {}
        return found.groupdict()


class RawParser:
    fmt = "raw"
    keys = None

    def fields(self, line):
        return {}


def make_parser(fmt, first_line, logs, header=None):
    """The parser for a file; CSV takes its header (the first non-blank line, or the stored one)."""
    if fmt == "csv":
        return CsvParser(header if header is not None else first_line)
    if fmt == "jsonl":
        return JsonParser()
    if fmt == "regex":
        return RegexParser(logs.log_regex)
    if fmt == "text":
        parser = RegexParser(TEXT_LINE, required=False)
        parser.fmt = "text"
        return parser
    return RawParser()


def format_for(logs, relative_path):
    """LOG_FORMATS (first matching glob), else LOG_FORMAT."""
    for pattern, fmt in logs.log_formats:
        if path_matches(relative_path, (pattern,)):
            return fmt
    return logs.log_format


def path_matches(relative_path, patterns):
    """A remote file's path below FTP_REMOTE_DIR, or its name alone, matches one of the globs."""
    name = posixpath.basename(relative_path)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(relative_path, p) for p in patterns)


# ---------------------------------------------------------------- fields -> COPY text


def copy_text(value):
    """Escape a str for COPY's text format."""
    if "\\" in value or "\t" in value or "\r" in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
    return value


def parse_time(value, tz, formats=TIME_FORMATS):
    """ISO 8601 (and the usual plant formats, day first) or epoch seconds/ms → ISO text with offset, else None."""
    if type(value) in (int, float) or (type(value) is str and value.isdigit() and len(value) >= 9):
        return _epoch(float(value))
    if type(value) is not str or not value:
        return None
    value = value.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
        for fmt in formats:
            try:
                moment = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        if moment is None:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.isoformat()


def _epoch(number):
    while number > 1e11:  # milliseconds, microseconds
        number /= 1000
    if number < 1e8:
        return None
    return datetime.fromtimestamp(number, UTC).isoformat()


class Roles:
    """Which field supplies machine_id, logged_at, level and message, for one set of keys."""

    __slots__ = ("machine", "time", "date_time", "level", "message")

    def __init__(self, keys):
        lowered = {k.lower(): k for k in keys}
        self.machine = _role(lowered, MACHINE_KEYS)
        self.time = _role(lowered, TIME_KEYS)
        self.level = _role(lowered, LEVEL_KEYS)
        self.message = _role(lowered, MESSAGE_KEYS)
        self.date_time = (lowered["date"], lowered["time"]) if "date" in lowered and "time" in lowered else None


def _role(lowered, candidates):
    """The original key of the first candidate present (``lowered`` maps lower-cased keys to originals)."""
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    return None


class RowWriter:
    """COPY text for one file's rows: source_file, file_version, line_no, machine_id, logged_at, level,
    message, fields."""

    COLUMNS = ("source_file", "file_version", "line_no", "machine_id", "logged_at", "level", "message", "fields")

    def __init__(self, source_file, version, path_machine, tz):
        self.prefix = f"{copy_text(source_file)}\t{version}\t"
        self.path_machine = copy_text(path_machine) if path_machine else COPY_NULL
        self.tz = tz
        self.utc = tz.utcoffset(None) == timedelta(0)  # fixed UTC: naive ISO text only needs a "Z"
        self.roles = {}      # keys of a JSON/regex record -> Roles
        self.csv_plans = {}  # CSV header keys -> column indexes (one per file in practice)

    def row(self, line_no, line, fields):
        """One COPY line from a dict of parsed fields (JSON, regex, text, raw)."""
        roles = self._roles(tuple(fields))
        body = json.dumps(fields, ensure_ascii=False) if fields else "{}"
        return self._line(line_no, self._machine(fields, roles), self._time(fields, roles),
                          self._text(fields.get(roles.level) if roles.level else None, upper=True),
                          self._message(fields, roles, line), body)

    def csv_row(self, line_no, line, values, keys):
        """One COPY line from CSV values: the hot path, so roles are column indexes worked out once."""
        plan = self.csv_plans.get(keys) or self._csv_plan(keys)
        machine_i, time_i, date_i, level_i, message_i, json_keys = plan
        machine = values[machine_i] if machine_i is not None else ""
        stamp = COPY_NULL if time_i is None else self.time(
            values[time_i] if date_i is None else f"{values[date_i]} {values[time_i]}")
        level = values[level_i] if level_i is not None else ""
        body = "{" + ", ".join(map(add, json_keys, map(encode_basestring, values))) + "}"
        return self._line(line_no, copy_text(machine) if machine else self.path_machine, stamp,
                          copy_text(level.upper()) if level else COPY_NULL,
                          values[message_i] if message_i is not None else line, body)

    def _line(self, line_no, machine, stamp, level, message, body):
        """The COPY text line; ``machine``, ``stamp`` and ``level`` come escaped, ``message`` and ``body`` raw."""
        if "\\" in body:  # JSON escapes are backslashes, which COPY text doubles
            body = body.replace("\\", "\\\\")
        return f"{self.prefix}{line_no}\t{machine}\t{stamp}\t{level}\t{copy_text(message)}\t{body}\n"

    def _csv_plan(self, keys):
        roles, index = Roles(keys), {k: i for i, k in enumerate(keys)}
        time_i = index.get(roles.time)
        date_i = None
        if roles.date_time and roles.time in roles.date_time:
            date_i, time_i = index[roles.date_time[0]], index[roles.date_time[1]]
        plan = (index.get(roles.machine), time_i, date_i, index.get(roles.level), index.get(roles.message),
                [encode_basestring(k) + ": " for k in keys])
        self.csv_plans[keys] = plan
        return plan

    def time(self, value):
        """ISO text quickly (validated by Python, handed on as is when it is safe); else parse_time."""
        try:
            moment = datetime.fromisoformat(value)
        except (ValueError, TypeError):
            return parse_time(value, self.tz) or COPY_NULL
        if moment.tzinfo is None:
            if self.utc and "," not in value:
                return value + "Z"
            moment = moment.replace(tzinfo=self.tz)
        elif "," not in value:
            return value
        return moment.isoformat()

    def _roles(self, keys):
        roles = self.roles.get(keys)
        if roles is None:
            if len(self.roles) > 1000:
                self.roles.clear()
            roles = self.roles[keys] = Roles(keys)
        return roles

    def _machine(self, record, roles):
        value = record.get(roles.machine) if roles.machine else None
        return self._text(value) if value not in (None, "") else self.path_machine

    def _time(self, record, roles):
        if roles.time:
            value = record.get(roles.time)
            if roles.date_time and roles.time in roles.date_time:
                value = f"{record.get(roles.date_time[0])} {record.get(roles.date_time[1])}"
            return self.time(value) if type(value) is str else parse_time(value, self.tz) or COPY_NULL
        return COPY_NULL

    @staticmethod
    def _text(value, upper=False):
        if value is None or value == "":
            return COPY_NULL
        if type(value) is not str:
            value = json.dumps(value, ensure_ascii=False)
        return copy_text(value.upper() if upper else value)

    @staticmethod
    def _message(record, roles, line):
        value = record.get(roles.message) if roles.message else None
        if value is None:
            return line
        return value if type(value) is str else json.dumps(value, ensure_ascii=False)


def machine_from_path(relative_path, pattern=None):
    """FTP_MACHINE_ID_REGEX on the path below FTP_REMOTE_DIR; by default its first folder, else the
    file name up to the first ``_`` or ``.``."""
    if pattern is not None:
        found = pattern.search(relative_path)
        if not found:
            return None
        if "machine" in pattern.groupindex:
            return found.group("machine")
        return found.group(1) if pattern.groups else found.group(0)
    folder, _, name = relative_path.partition("/")
    if name:
        return folder
    return re.split(r"[_.]", folder, maxsplit=1)[0] or None
