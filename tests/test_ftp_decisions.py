"""Unit tests of the per-file decisions: what the ledger says to do, and what may be removed where."""

from __future__ import annotations

import pytest

from datasync.errors import FileError
from datasync.ftp.remove import archive_path


def test_archive_paths_stay_inside_the_archive():
    assert archive_path("/home/plant/in/a b/..c.log", "/home/plant/in", "/archive") == "/archive/a b/..c.log"
    with pytest.raises(FileError, match="refusing to archive outside /archive"):
        archive_path("/home/plant/elsewhere/x.log", "/home/plant/in", "/archive")
