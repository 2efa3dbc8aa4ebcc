"""What every protocol offers the ingestion, and what they share: the listing and the error translation.

A protocol class (ftp.FtpRemote, sftp.SftpRemote) implements the driver calls; ``Remote``
builds the listing from them.  Each protocol module hands its driver exceptions to
``translator`` once, and wraps every driver call in the context manager it returns, so they
leave as ``TransferError("what failed: reason")`` -- the caller names the file.
Nothing here writes to the local disk: remote names only ever become remote paths.
"""

from __future__ import annotations

import logging
import posixpath
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from ...errors import FileError, TransferError, UnreachableError
from ...report import one_line
from ..paths import path_matches, relative_path

log = logging.getLogger("datasync.ftp")
CHUNK = 256 * 1024  # bytes asked of the server at a time
MAX_DEPTH = 32      # sub-folder levels walked below FTP_REMOTE_DIR


@dataclass(frozen=True)
class RemoteFile:
    path: str              # absolute remote path
    size: int
    mtime: datetime | None  # UTC; None when the server does not say


def translator(errors):
    """A context manager factory: ``with translated("cannot delete"):`` turns ``errors`` into TransferError."""

    @contextmanager
    def translated(failure):
        try:
            yield
        except errors as exc:
            raise TransferError(f"{failure}: {one_line(exc)}") from exc

    return translated


def check_name(path):
    """Refuse names no protocol command can carry (CR/LF would inject FTP commands)."""
    if "\n" in path or "\r" in path or "\0" in path:
        raise FileError("file name contains a line break or NUL; not loaded")
    return path


class Remote:
    """A logged-in connection to the server of FTP_HOST, by one protocol.

    Subclasses provide ``open``, ``close`` (log out), ``abort`` (drop the connection without
    waiting for the server), ``version``, ``list_dir``, ``stat``, ``fetch``, ``head``,
    ``delete``, ``rename`` and ``makedirs``; every one of them raises TransferError for what
    the server or the connection refused.
    """

    def __init__(self, ftp, common):
        self.settings, self.common = ftp, common
        self.what = f"{ftp.protocol.upper()} server {ftp.host}:{ftp.port} (user {ftp.user})"
        self.home = "/"  # the login folder: relative settings are below it

    def reopen(self):
        """After a failed transfer the connection may be out of step or gone: log in afresh."""
        self.abort()
        self.open()
        return self

    def absolute(self, path):
        return posixpath.normpath(posixpath.join(self.home, path))

    def listing(self):
        """The files a run considers: regular files below FTP_REMOTE_DIR that match FTP_FILE_PATTERN, by path.

        A listing that fails ends the run (UnreachableError): without it nothing can be decided.
        """
        base, patterns = self.absolute(self.settings.remote_dir), self.settings.file_pattern
        try:
            files = self.walk(base)
        except TransferError as exc:
            raise UnreachableError(f"{self.what}: {exc}") from exc
        chosen = [f for f in files if path_matches(relative_path(f.path, base), patterns)]
        log.info("%s: %s files, %s matching %s", base, len(files), len(chosen), ",".join(patterns))
        return chosen

    def walk(self, base):
        """Every regular file under ``base`` (sub-folders when FTP_RECURSIVE, not the archive), sorted by path."""
        archive = self.settings.archive_dir and self.absolute(self.settings.archive_dir)
        pending, files = [(base, 0)], []
        while pending:
            folder, depth = pending.pop()
            for path, kind, size, mtime in self.list_dir(folder):
                if kind == "file":
                    files.append(RemoteFile(path, size, mtime))
                elif kind == "dir" and self.settings.recursive and depth < MAX_DEPTH and path != archive:
                    pending.append((path, depth + 1))
        return sorted(files, key=lambda f: f.path)
