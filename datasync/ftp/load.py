"""The load of one file, in one transaction: download → (gunzip) → lines → rows → COPY, then its ledger row.

Nothing is held whole, in memory or on disk: chunks flow from the server through ``Lines`` and
the parser into PostgreSQL's COPY.  Rejected lines wait in a buffer that is COPYed into the
rejects table between rounds of the target's COPY (at the end, or when it holds REJECT_BUFFER
bytes).  The rows, the rejects and the ledger row commit together or not at all; a partial
last line is not loaded, and the ledger's offset stops before it.

A ``.gz`` file is complete by construction: it is always read from its first byte, its last
line is loaded without a newline, and the lines an earlier run loaded are skipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .. import postgres
from ..errors import LineRejected, TransferError
from ..postgres import ident
from ..report import Progress
from .ledger import HEAD_BYTES, loaded_row
from .lines import BadLine, Lines, gunzip
from .parsers import format_for, make_parser, sniff_format
from .paths import machine_from_path, relative_path
from .rows import COLUMNS, REJECT_COLUMNS, RowWriter

log = logging.getLogger("datasync.ftp")
REJECT_BUFFER = 16 << 20   # bytes of rejected lines held before they are COPYed
PROGRESS_BYTES = 16 << 20  # downloads larger than this report progress


@dataclass(frozen=True)
class Loaded:
    """What one load read and wrote: the facts its ledger row and its log line are made of."""

    fmt: str | None       # the file's format, and its CSV header
    header: str | None
    head: bytes           # the file's first HEAD_BYTES (or fewer, for a smaller file)
    size: int             # bytes of the file known now
    offset: int           # bytes covered by complete lines: where the next run starts
    next_line_no: int
    loaded: int           # lines loaded and rejected by this load
    rejected: int
    received: int         # bytes downloaded
    fallback_lines: int   # lines read in LOG_FALLBACK_ENCODING


def load_file(job, f, decision):
    """Load ``f``'s new complete lines and its ledger row in one transaction; return the Loaded."""
    started = time.monotonic()
    base = job.remote.absolute(job.settings.ftp.remote_dir)
    loader = FileLoad(job.settings.logs, job.remote, f, decision, relative_path(f.path, base))
    try:
        with job.pg:
            loader.copy(job.pg)
            loaded = loader.outcome()
            row = loaded_row(job.source, f, decision, loaded, job.run.id)
            job.ledger.save(row)
    finally:
        loader.close()
    job.ledger.remember(row)
    log_loaded(job, f, decision, loaded, time.monotonic() - started)
    return loaded


def log_loaded(job, f, decision, loaded, seconds):
    """The file's line in the story of the run: what was loaded, and what waits."""
    waits = "" if loaded.offset == loaded.size else "; a last line without its newline waits"
    log.info("%s: %s, version %s, lines %s-%s: %s loaded, %s rejected, %s bytes in %.2fs%s", f.path, decision.kind,
             decision.version, decision.start.line_no, loaded.next_line_no - 1, loaded.loaded, loaded.rejected,
             loaded.received, seconds, waits)
    if loaded.fallback_lines:
        logs = job.settings.logs
        log.warning("%s: %s lines were not valid %s and were read as %s", f.path, loaded.fallback_lines,
                    logs.log_encoding, logs.log_fallback_encoding)


class Download:
    """The file's bytes from ``offset`` on, counted, with its first HEAD_BYTES kept for the ledger."""

    def __init__(self, remote, path, offset, head):
        self.offset = offset
        self.head = bytearray(head or b"")
        self.received = 0
        self.stream = remote.fetch(path, offset)

    def chunks(self):
        for chunk in self.stream:
            if len(self.head) < HEAD_BYTES:
                self._keep_head(self.offset + self.received, chunk)
            self.received += len(chunk)
            yield chunk

    def _keep_head(self, position, chunk):
        """Extend the head with the bytes of ``chunk`` (which starts at byte ``position`` of the file)
        that follow it: a resumed download starts after bytes the head may already hold."""
        start = len(self.head) - position
        if 0 <= start < len(chunk):
            self.head += chunk[start:start + HEAD_BYTES - len(self.head)]

    def close(self):
        """End the transfer now, finished or not (an abandoned FTP download closes its connection)."""
        self.stream.close()


class Rejects:
    """Rejected lines as COPY text of the rejects table, held until the load flushes them."""

    def __init__(self):
        self.lines, self.bytes, self.count = [], 0, 0

    def add(self, text):
        self.lines.append(text)
        self.bytes += len(text)
        self.count += 1

    @property
    def full(self):
        return self.bytes > REJECT_BUFFER

    def take(self):
        """The held COPY text (empty when none), and an empty buffer."""
        text, self.lines, self.bytes = "".join(self.lines), [], 0
        return text.encode("utf-8")


class LineRows:
    """Numbered lines → COPY rows: the format and parser are chosen at the first non-blank line."""

    def __init__(self, logs, relative, writer, start, skip_below):
        self.logs, self.relative, self.writer = logs, relative, writer
        self.fmt, self.header = start.fmt, start.header
        self.parser = None
        if self.header is not None or self.fmt not in (None, "csv"):  # a resumed file: as found at its start
            self.parser = make_parser(self.fmt, self.header, logs.log_regex)
        self.skip_below = skip_below  # lines an earlier run loaded (a grown .gz is read again from its start)
        self.loaded = 0
        self.rejects = Rejects()

    def row(self, item):
        """The COPY line for one (line_no, text), or None: blank, header, skipped or rejected."""
        line_no, text = item
        if line_no < self.skip_below:
            return None
        if type(text) is BadLine:
            return self.reject(line_no, text.text, text.reason)
        if not text or text.isspace():
            return None
        if self.parser is None and self.choose_parser(text):
            return None
        parser = self.parser
        try:
            if parser.keys is not None:
                return self.writer.csv_row(line_no, text, parser.fields(text), parser.keys)
            return self.writer.row(line_no, text, parser.fields(text), text if parser.fields_are_the_line else None)
        except LineRejected as exc:
            return self.reject(line_no, text, str(exc))

    def choose_parser(self, first_line):
        """Pick the format (LOG_FORMATS, LOG_FORMAT, sniffing) at the first line; True when it is a CSV header."""
        self.fmt = self.fmt or format_for(self.logs, self.relative)
        if self.fmt == "auto":
            self.fmt = sniff_format(self.relative, first_line)
        self.parser = make_parser(self.fmt, first_line, self.logs.log_regex)
        if self.fmt == "csv":
            self.header = first_line
            return True
        return False

    def reject(self, line_no, text, reason):
        self.rejects.add(self.writer.reject(line_no, text, reason))
        return None


class FileLoad:
    """One file's download, lines and rows, and the COPY rounds that store them."""

    def __init__(self, logs, remote, f, decision, relative):
        self.f, self.start = f, decision.start
        self.gz = f.path.lower().endswith(".gz")
        self.download = Download(remote, f.path, 0 if self.gz else self.start.offset, decision.head)
        self.lines = Lines(logs.log_encoding, logs.log_fallback_encoding, logs.log_max_line_bytes,
                           1 if self.gz else self.start.line_no)
        writer = RowWriter(f.path, decision.version, machine_from_path(relative, logs.machine_id_regex),
                           logs.log_timezone)
        self.rows = LineRows(logs, relative, writer, self.start, self.start.line_no if self.gz else 0)
        self.tables = (ident(logs.target_schema, logs.target_table), ident(logs.target_schema, logs.rejects_table))
        self.progress = Progress(log, f.path, "lines") if f.size - self.start.offset > PROGRESS_BYTES else None
        self.finished = False

    def copy(self, pg):
        """COPY rows and rejects in as many rounds as the rejects buffer needs."""
        target, rejects = self.tables
        batches = self.batches()
        while not self.finished:
            postgres.copy_in(pg, target, COLUMNS, self.segment(batches))
            held = self.rows.rejects.take()
            if held:
                postgres.copy_in(pg, rejects, REJECT_COLUMNS, [held])
        if self.progress:
            self.progress.close()

    def batches(self):
        """Lists of numbered lines, as the chunks complete them."""
        chunks = self.download.chunks()
        for chunk in gunzip(chunks) if self.gz else chunks:
            items = self.lines.feed(chunk)
            if items:
                yield items
        if self.gz:
            yield self.lines.finish()

    def segment(self, batches):
        """COPY text for the target until the input ends (``finished``) or the rejects buffer is full."""
        row = self.rows.row
        for items in batches:
            out = [text for text in map(row, items) if text is not None]
            self.rows.loaded += len(out)
            if self.progress:
                self.progress.add(len(items))
            if out:
                yield "".join(out).encode("utf-8")
            if self.rows.rejects.full:
                return
        self.finished = True

    def outcome(self):
        """The Loaded, once every byte listed has arrived (else TransferError: nothing is kept)."""
        received = self.download.received
        expected = self.f.size - (0 if self.gz else self.start.offset)
        if received < expected:
            raise TransferError(f"received {received} of {expected} bytes; the file shrank or the transfer "
                                "was cut short")
        size = received if self.gz else self.start.offset + received
        return Loaded(
            fmt=self.rows.fmt, header=self.rows.header, head=bytes(self.download.head), size=size,
            offset=size if self.gz else self.start.offset + self.lines.consumed,
            next_line_no=max(self.lines.line_no, self.start.line_no) if self.gz else self.lines.line_no,
            loaded=self.rows.loaded, rejected=self.rows.rejects.count, received=received,
            fallback_lines=self.lines.fallback_lines)

    def close(self):
        self.download.close()
