"""DELETE_AFTER_SYNC: delete a fully loaded file, or move it to FTP_ARCHIVE_DIR, after its commit.

Only a file whose every line is committed (ledger status ``loaded``), unchanged since the
listing and older than FTP_MIN_FILE_AGE is removed.  Archiving keeps the file's path below
FTP_REMOTE_DIR and never overwrites a file there (a UTC timestamp is appended to the name).
A failure is logged, noted in the ledger and counted; the next run tries again without
reloading the file.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import UTC, datetime

from ..errors import FileError
from .ledger import age_of

log = logging.getLogger("datasync.ftp")


def removable(ftp, row, f):
    """DELETE_AFTER_SYNC, fully loaded, the same size as listed, and old enough."""
    age = age_of(f)
    return (ftp.delete_after_sync and row is not None and row["status"] == "loaded"
            and row["size"] == f.size and row["offset_loaded"] == f.size
            and age is not None and age >= ftp.min_file_age)


def archive_path(path, base, archive):
    """Where ``path`` goes in the archive: its path below ``base`` (FTP_REMOTE_DIR), below ``archive``."""
    relative = posixpath.relpath(path, base)
    dest = posixpath.normpath(posixpath.join(archive, relative))
    if relative.startswith("..") or not dest.startswith(archive.rstrip("/") + "/"):
        raise FileError(f"refusing to archive outside {archive}")
    return dest


def remove(remote, ledger, ftp, f):
    """Delete or archive a committed file; return 'deleted', 'archived' or 'delete failed'."""
    try:
        values = archive(remote, ftp, f.path) if ftp.archive_dir else delete(remote, f.path)
    except FileError as exc:
        log.warning("%s: %s; it stays loaded in the ledger and the next run tries again", f.path, exc)
        ledger.note(f.path, last_error=str(exc))
        remote.reopen()
        return "delete failed"
    ledger.note(f.path, deleted_at=datetime.now(UTC), last_error=None, **values)
    log.info("%s: %s%s", f.path, values["status"], f" to {values['archived_to']}" if "archived_to" in values else "")
    return values["status"]


def delete(remote, path):
    remote.delete(path)
    return {"status": "deleted"}


def archive(remote, ftp, path):
    """Move into FTP_ARCHIVE_DIR under a name no file there has yet."""
    dest = archive_path(path, remote.absolute(ftp.remote_dir), remote.absolute(ftp.archive_dir))
    remote.makedirs(posixpath.dirname(dest))
    if remote.stat(dest) is not None:
        dest = f"{dest}.{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    remote.rename(path, dest)
    return {"status": "archived", "archived_to": dest}
