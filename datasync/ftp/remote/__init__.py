"""The server the log files come from: FTP, FTPS or SFTP behind one interface (``base.Remote``).

    remote = connect(settings.ftp, settings.common)   # logged in; UnreachableError / ConfigError
    for f in remote.listing(): ...                     # RemoteFile(path, size, mtime), matching files
    remote.stat(path)                                  # the file now, or None when it is gone
    for chunk in remote.fetch(path, offset): ...       # streamed; TransferError if cut short
    remote.head(path, n); remote.delete(path); remote.rename(path, dest); remote.makedirs(folder)
    remote.reopen(); remote.close(); remote.abort()    # abort: drop it without waiting for the server
"""

from __future__ import annotations

from .base import Remote, RemoteFile, check_name
from .ftp import FtpRemote
from .sftp import SftpRemote, fingerprint_of

__all__ = ["FtpRemote", "Remote", "RemoteFile", "SftpRemote", "check_name", "connect", "fingerprint_of"]


def connect(ftp, common) -> Remote:
    """A logged-in remote for FTP_PROTOCOL (bounded retries)."""
    remote = SftpRemote(ftp, common) if ftp.protocol == "sftp" else FtpRemote(ftp, common)
    return remote.open()
