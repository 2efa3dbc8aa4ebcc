"""Unit tests of bytes → lines: chunk boundaries, line ends, BOM, encodings, NUL, over-long lines, gunzip."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasync.errors import FileError
from datasync.ftp.lines import BadLine, Lines, gunzip

# pieces that make lines interesting: line ends, a BOM, UTF-8 and cp1252 text, bytes valid in
# neither (0x81), a split UTF-8 sequence, NUL
PIECES = [b"a", b"bc", b" ", b"\n", b"\r\n", b"\r", b"\xef\xbb\xbf", "é".encode(), "€".encode()[:2], b"\xe9",
          b"\x81", b"\x00", b"x" * 7]
MAX = 10  # LOG_MAX_LINE_BYTES for these tests: long lines come easily


def feed_all(data, cuts, max_bytes=MAX, first_line_no=1):
    """Feed ``data`` cut at ``cuts``; return everything a run would keep of it."""
    lines = Lines("utf-8", "cp1252", max_bytes, first_line_no)
    out, start = [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += lines.feed(data[start:cut])
        start = cut
    return out, lines.consumed, lines.line_no, lines.complete, lines.fallback_lines


@given(st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join), st.data())
def test_any_chunking_gives_the_same_lines_offsets_and_numbers(data, draw):
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=12))
    assert feed_all(data, cuts) == feed_all(data, [])


@given(st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join))
def test_consumed_ends_at_the_last_newline_and_lines_are_numbered_in_order(data):
    out, consumed, next_line_no, complete, _ = feed_all(data, [], first_line_no=5)
    tail = data[data.rfind(b"\n") + 1:]
    assert consumed == data.rfind(b"\n") + 1
    assert [n for n, _ in out] == list(range(5, 5 + data.count(b"\n"))) and next_line_no == 5 + data.count(b"\n")
    assert complete == (tail == b"")


def test_crlf_bom_and_blank_lines():
    out, consumed, _, complete, _ = feed_all(b"\xef\xbb\xbfts;msg\r\n\r\nsecond\xef\xbb\xbf\r\nlast", [4, 9])
    assert out == [(1, "ts;msg"), (2, ""), (3, "second\ufeff")]  # only line 1 loses a BOM
    assert consumed == len(b"\xef\xbb\xbfts;msg\r\n\r\nsecond\xef\xbb\xbf\r\n") and not complete


def test_a_bom_is_dropped_only_at_the_start_of_the_file():
    lines = Lines("utf-8", "cp1252", MAX, first_line_no=3)  # a resumed file
    assert lines.feed(b"\xef\xbb\xbfx\n") == [(3, "\ufeffx")]


def test_fallback_encoding_and_bytes_valid_in_neither():
    out, *_, fallback = feed_all("café\n".encode() + b"caf\xe9\n" + b"\x81bad\r\n", [], max_bytes=100)
    assert out == [(1, "café"), (2, "café"), (3, BadLine("bytes not valid in utf-8 or cp1252", "\ufffdbad"))]
    assert fallback == 1


def test_a_utf8_character_split_across_chunks_decodes_whole():
    data = "Grüße €\n".encode()
    for cut in range(len(data)):
        assert feed_all(data, [cut], max_bytes=100)[0] == [(1, "Grüße €")]


def test_nul_bytes_reject_the_line_and_are_shown():
    out = feed_all(b"ok\nn\x00l\n", [])[0]
    assert out == [(1, "ok"), (2, BadLine("line contains NUL bytes (shown as \u2400)", "n\u2400l"))]


@pytest.mark.parametrize("cuts", [[], [3], [5, 12], list(range(1, 30))])
def test_an_over_long_line_is_rejected_with_its_first_bytes_whatever_the_chunks(cuts):
    data = b"short\n" + b"L" * 25 + b"\nafter\n"
    out, consumed, _, complete, _ = feed_all(data, cuts)
    reason = f"line longer than {MAX} bytes (first {MAX} characters kept)"  # at most REJECT_KEEP
    assert out == [(1, "short"), (2, BadLine(reason, "L" * MAX)), (3, "after")]
    assert consumed == len(data) and complete


def test_an_over_long_partial_line_is_never_buffered_and_waits_for_its_newline():
    lines = Lines("utf-8", "cp1252", MAX)
    assert lines.feed(b"x" * 50) == [] and lines.pending == b"" and not lines.complete
    assert lines.feed(b"y" * 50) == [] and lines.consumed == 0
    assert [n for n, _ in lines.feed(b"z\nnext\n")] == [1, 2] and lines.consumed == 107


def test_a_line_of_exactly_max_bytes_is_kept():
    assert feed_all(b"x" * MAX + b"\n", [])[0] == [(1, "x" * MAX)]
    assert feed_all(b"x" * MAX + b"\r\n", [])[0][0][1].reason.startswith("line longer")  # the CR counts


def test_finish_hands_out_the_last_line_of_a_complete_stream():
    lines = Lines("utf-8", "cp1252", MAX)
    assert lines.feed(b"a\nlast") == [(1, "a")]
    assert lines.finish() == [(2, "last")] and lines.consumed == 6 and lines.complete


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8), st.integers(1, 3))
def test_gunzip_of_any_chunking_and_members(data, cuts, members):
    stream = b"".join(gzip.compress(data[i::members]) for i in range(members))
    cuts = sorted({c for c in cuts if c < len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert b"".join(gunzip(chunks)) == b"".join(data[i::members] for i in range(members))


def test_gunzip_refuses_broken_and_truncated_data():
    with pytest.raises(FileError, match="not a valid gzip file"):
        list(gunzip([b"this is not gzip\n"]))
    with pytest.raises(FileError, match="gzip data ends early"):
        list(gunzip([gzip.compress(b"x\n" * 1000)[:-30]]))
