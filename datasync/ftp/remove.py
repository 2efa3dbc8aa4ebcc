"""DELETE_AFTER_SYNC: delete a fully loaded file, or move it to FTP_ARCHIVE_DIR, after its commit.

Only a file whose every line is committed (ledger status ``loaded``), unchanged since the
listing and older than FTP_MIN_FILE_AGE is removed -- and only if, right before the delete or
move, a fresh stat of that one file (MLST, or SIZE and MDTM; SFTP stat) still shows the size
and modification time that were loaded.  A file that changed stays, and the next run loads
the rest.  No protocol offers a delete that checks first, so one network round trip remains
between the server's answer to the stat and its delete (README, "Delete only what was loaded").

Archiving keeps the file's path below FTP_REMOTE_DIR and never overwrites a file there (a UTC
timestamp is appended to the name).  A failure is logged, noted in the ledger and counted; the
next run tries again without reloading the file.
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
    """Delete or archive a committed file, if it is still exactly what was loaded.

    Returns 'deleted', 'archived', 'kept' (it changed since it was loaded: the next run loads
    the rest), 'gone' (someone else removed it) or 'delete failed'.
    """
    row = ledger.get(f.path)
    try:
        dest = archive_destination(remote, ftp, f.path) if ftp.archive_dir else None
        now = remote.stat(f.path)  # the last command before the delete or move: the window stays one round trip
        if now is None or (now.size, now.mtime) != (row["size"], row["mtime"]):
            return not_removed(f.path, row, now)
        values = move(remote, f.path, dest) if dest else delete(remote, f.path)
    except FileError as exc:
        log.warning("%s: %s; it stays loaded in the ledger and the next run tries again", f.path, exc)
        ledger.note(f.path, last_error=str(exc))
        remote.reopen()
        return "delete failed"
    ledger.note(f.path, deleted_at=datetime.now(UTC), last_error=None, **values)
    log.info("%s: %s%s", f.path, values["status"], f" to {values['archived_to']}" if "archived_to" in values else "")
    return values["status"]


def not_removed(path, row, now):
    """Log why a loaded file stays where it is: it is gone, or it changed after it was loaded."""
    if now is None:
        log.info("%s: gone from the server before it could be removed; its lines are loaded", path)
        return "gone"
    log.warning("%s: changed since it was loaded (%s bytes, modified %s; now %s bytes, modified %s); not removed, "
                "the next run loads the rest", path, row["size"], _stamp(row["mtime"]), now.size, _stamp(now.mtime))
    return "kept"


def _stamp(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "unknown"


def delete(remote, path):
    remote.delete(path)
    return {"status": "deleted"}


def archive_destination(remote, ftp, path):
    """The file's place in FTP_ARCHIVE_DIR, its folders made, under a name no file there has yet."""
    dest = archive_path(path, remote.absolute(ftp.remote_dir), remote.absolute(ftp.archive_dir))
    remote.makedirs(posixpath.dirname(dest))
    if remote.stat(dest) is not None:
        dest = f"{dest}.{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    return dest


def move(remote, path, dest):
    remote.rename(path, dest)
    return {"status": "archived", "archived_to": dest}
