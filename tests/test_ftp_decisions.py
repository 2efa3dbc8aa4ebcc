"""Unit tests of the per-file decisions: what the ledger says to do, and what may be removed where."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from datasync.errors import FileError
from datasync.ftp.ledger import Start, decide
from datasync.ftp.remote import RemoteFile
from datasync.ftp.remove import archive_path, removable


def test_archive_paths_stay_inside_the_archive():
    assert archive_path("/home/plant/in/a b/..c.log", "/home/plant/in", "/archive") == "/archive/a b/..c.log"
    with pytest.raises(FileError, match="refusing to archive outside /archive"):
        archive_path("/home/plant/elsewhere/x.log", "/home/plant/in", "/archive")


# ---------------------------------------------------------------- the decision per file

NOW = datetime.now(UTC)
OLD = NOW - timedelta(hours=1)
HEAD = b"2024-03-01 08:00:00 INFO first line\n"


def known(**values):
    """A ledger row of a file loaded up to 100 bytes of 100, its head HEAD."""
    row = {"version": 1, "status": "loaded", "size": 100, "mtime": OLD, "offset_loaded": 100, "next_line_no": 5,
           "head_sha256": hashlib.sha256(HEAD).hexdigest(), "head_length": len(HEAD), "format": "text",
           "header": None, "lines_loaded": 4, "lines_rejected": 0}
    return {**row, **values}


def head_read(data=HEAD):
    calls = []

    def read():
        calls.append(True)
        return data
    read.calls = calls
    return read


def test_a_young_file_waits_and_its_head_is_not_read():
    read = head_read()
    d = decide(RemoteFile("/a.log", 100, datetime.now(UTC) - timedelta(seconds=5)), known(), 60, read)
    assert (d.kind, d.loads, read.calls) == ("young", False, []) and d.note.startswith("changed 5s ago")


@pytest.mark.parametrize("row, kind, version", [(None, "new", 1), (known(status="deleted", version=3), "new", 4),
                                                (known(status="archived"), "new", 2)])
def test_new_files_and_files_seen_again_after_removal(row, kind, version):
    d = decide(RemoteFile("/a.log", 10, OLD), row, 60, head_read())
    assert (d.kind, d.version, d.start) == (kind, version, Start())


def test_same_size_and_time_is_unchanged_without_reading_anything():
    read = head_read()
    assert decide(RemoteFile("/a.log", 100, OLD), known(), 60, read).kind == "unchanged" and read.calls == []


def test_only_the_time_changed():
    d = decide(RemoteFile("/a.log", 100, OLD + timedelta(seconds=1)), known(), 60, head_read())
    assert (d.kind, d.retimed, d.loads) == ("unchanged", True, False)


def test_grown_with_the_same_head_resumes_where_the_last_run_stopped():
    d = decide(RemoteFile("/a.log", 150, OLD), known(offset_loaded=90, status="partial"), 60, head_read(HEAD + b"x"))
    assert (d.kind, d.version, d.head) == ("resumed", 1, HEAD + b"x")
    assert d.start == Start(offset=90, line_no=5, fmt="text", header=None, loaded=4, rejected=0)


@pytest.mark.parametrize("size, head", [(50, HEAD), (150, b"rotated " + HEAD)])
def test_shrunk_or_a_changed_head_is_a_new_version(size, head):
    d = decide(RemoteFile("/a.log", size, OLD), known(), 60, head_read(head))
    assert (d.kind, d.version, d.start, d.loads) == ("rewritten", 2, Start(), True)


def test_an_empty_file_once_loaded_is_unchanged_and_resumes_when_it_grows():
    empty = known(size=0, offset_loaded=0, head_sha256=hashlib.sha256(b"").hexdigest(), head_length=0,
                  next_line_no=1, lines_loaded=0)
    assert decide(RemoteFile("/e.log", 0, OLD), empty, 60, head_read(b"")).kind == "unchanged"
    assert decide(RemoteFile("/e.log", 5, OLD), empty, 60, head_read(b"line\n")).kind == "resumed"


# ---------------------------------------------------------------- what may be removed


def ftp(**values):
    return SimpleNamespace(**{"delete_after_sync": True, "min_file_age": 60, **values})


@pytest.mark.parametrize("settings, row, f, expected", [
    (ftp(), known(), RemoteFile("/a.log", 100, OLD), True),
    (ftp(delete_after_sync=False), known(), RemoteFile("/a.log", 100, OLD), False),
    (ftp(), None, RemoteFile("/a.log", 100, OLD), False),                                   # never loaded
    (ftp(), known(status="partial", offset_loaded=90), RemoteFile("/a.log", 100, OLD), False),  # a partial line
    (ftp(), known(), RemoteFile("/a.log", 120, OLD), False),                                # grew since
    (ftp(), known(), RemoteFile("/a.log", 100, NOW + timedelta(days=1)), False),            # too young
    (ftp(), known(), RemoteFile("/a.log", 100, None), False),                               # age unknown
])
def test_removable(settings, row, f, expected):
    assert removable(settings, row, f) is expected
