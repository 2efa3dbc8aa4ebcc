"""Bytes → complete, decoded, numbered lines (and gunzip before that, for ``.gz`` files).

A download arrives in chunks that cut lines anywhere.  ``Lines`` hands out only complete
lines -- a last line without its newline waits for the next run -- and counts the bytes they
used (``consumed``), which becomes the ledger's offset: the offset never covers half a line.
Whatever the chunks, the lines, their numbers and ``consumed`` are the same.

A line that cannot become text is a ``BadLine`` (reason and printable text) for the rejects
table: bytes valid in neither LOG_ENCODING nor LOG_FALLBACK_ENCODING, NUL bytes, or more
than LOG_MAX_LINE_BYTES bytes (never buffered whole: only its first REJECT_KEEP bytes are kept).
"""

from __future__ import annotations

import zlib

from ..errors import FileError

REJECT_KEEP = 65536  # bytes of an over-long line kept (decoded) in the rejects table, at most
GZIP_OUT = 1 << 20   # the most bytes one inflate step may produce (bounded memory for zip bombs)


class BadLine:
    """A line that failed before parsing: why, and its text with NUL shown as ␀."""

    __slots__ = ("reason", "text")

    def __init__(self, reason, text):
        self.reason, self.text = reason, text

    def __repr__(self):
        return f"BadLine({self.reason!r}, {self.text[:40]!r})"

    def __eq__(self, other):
        return type(other) is BadLine and (self.reason, self.text) == (other.reason, other.text)


def gunzip(chunks):
    """Decompress a (possibly multi-member) gzip stream chunk by chunk, with bounded output.

    Raises FileError for data that is not gzip, or that ends inside a member (a file that
    was truncated or is still being written).
    """
    inflater, fed = zlib.decompressobj(wbits=47), False
    try:
        for chunk in chunks:
            while chunk:
                fed = True
                out = inflater.decompress(chunk, GZIP_OUT)
                if out:
                    yield out
                chunk = inflater.unconsumed_tail
                if inflater.eof:  # another member may follow
                    chunk = inflater.unused_data + chunk
                    inflater, fed = zlib.decompressobj(wbits=47), False
    except zlib.error as exc:
        raise FileError(f"not a valid gzip file: {exc}") from exc
    if fed:
        raise FileError("gzip data ends early (file truncated or still being written)")


class Lines:
    """Complete lines from byte chunks: ``feed(chunk)`` returns [(line_no, str | BadLine)].

    Lines split on b"\\n"; a trailing "\\r" and a UTF-8 BOM on line 1 are dropped.  Blank lines
    are returned too (they count in line numbers).  ``consumed`` counts the bytes up to and
    including the last newline handed out; ``complete`` says no partial line is held back.
    """

    def __init__(self, encoding, fallback, max_bytes, first_line_no=1):
        self.encoding, self.fallback, self.max_bytes = encoding, fallback, max_bytes
        self.keep = min(REJECT_KEEP, max_bytes)  # bytes of an over-long line kept: always at hand when it is cut
        self.line_no = first_line_no    # the number the next line gets
        self.consumed = 0
        self.fallback_lines = 0         # lines read as the fallback encoding (the run reports them)
        self.pending = b""              # the partial line after the last newline
        self.skipping = None            # the BadLine of an over-long line whose newline has not come yet
        self.skipped = 0                # that line's bytes so far

    @property
    def complete(self):
        """True when every byte fed ended in a newline (no partial line held back)."""
        return not self.pending and self.skipping is None

    def feed(self, chunk):
        """The lines that ``chunk`` completes, numbered."""
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
        out.extend(self._number(self.decode(data[:end])))
        self._hold(data[end + 1:])
        return out

    def finish(self):
        """The last line of a stream known to be complete (a gzip member), newline or not."""
        if self.skipping is not None:
            out, self.skipping = [(self.line_no, self.skipping)], None
            self.line_no += 1
        else:
            out = self._number(self.decode(self.pending)) if self.pending else []
        self.consumed += len(self.pending) + self.skipped
        self.pending, self.skipped = b"", 0
        return out

    def _hold(self, data):
        """Keep the partial last line; past ``max_bytes`` it is only counted until its newline comes."""
        self.pending = data
        if len(data) > self.max_bytes:
            self.skipping, self.skipped, self.pending = self._too_long(data), len(data), b""

    def _too_long(self, raw):
        text = raw[:self.keep].decode(self.encoding, "replace")
        return BadLine(f"line longer than {self.max_bytes} bytes (first {self.keep} characters kept)",
                       _printable(text))

    def decode(self, block):
        """The lines of ``block`` (complete lines joined by b"\\n", without the last newline) as text.

        The fast path decodes the whole block at once; a block that is not valid in the
        encoding, or long enough to hold an over-long line, is taken line by line.
        """
        if len(block) > self.max_bytes and max(map(len, block.split(b"\n"))) > self.max_bytes:
            texts = [self._too_long(raw) if len(raw) > self.max_bytes else self._decode_line(raw)
                     for raw in block.split(b"\n")]  # a line over the limit came within one chunk
        else:
            try:
                texts = block.decode(self.encoding).split("\n")
            except UnicodeDecodeError:
                texts = [self._decode_line(raw) for raw in block.split(b"\n")]
        if b"\r" in block:
            texts = [t[:-1] if type(t) is str and t.endswith("\r") else t for t in texts]
        if self.line_no == 1 and texts and type(texts[0]) is str:
            texts[0] = texts[0].removeprefix("\ufeff")
        if b"\0" in block:
            texts = [BadLine("line contains NUL bytes (shown as \u2400)", _printable(t))
                     if type(t) is str and "\0" in t else t for t in texts]
        return texts

    def _number(self, texts):
        first, self.line_no = self.line_no, self.line_no + len(texts)
        return list(zip(range(first, self.line_no), texts))

    def _decode_line(self, raw):
        """One line in LOG_ENCODING, else LOG_FALLBACK_ENCODING, else a BadLine."""
        try:
            return raw.decode(self.encoding)
        except UnicodeDecodeError:
            pass
        try:
            text = raw.decode(self.fallback)
        except UnicodeDecodeError:
            return BadLine(f"bytes not valid in {self.encoding} or {self.fallback}",
                           _printable(raw.decode(self.encoding, "replace").rstrip("\r")))
        self.fallback_lines += 1
        return text


def _printable(text):
    return text.replace("\0", "\u2400")
