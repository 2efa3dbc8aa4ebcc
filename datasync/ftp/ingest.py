"""One run of the log ingestion: list the server, then for each file decide → load → remove.

    run(settings)                 the run record and its outcome (runlog.run_job)
      an advisory lock per server and folder (an overlapping run exits 0)
      remote.listing()            the matching files, sorted by path
      per file: ledger.decide     young / unchanged / new / resumed / rewritten
                load.load_file    rows, rejects and ledger row in one transaction
                remove.remove     DELETE_AFTER_SYNC, after that commit
      the summary line

A failure is confined to its file: it is logged, noted in the ledger, and the next run tries
again; nothing of the failed attempt was committed.  A PostgreSQL connection lost mid-file is
re-opened and the file tried once more; a second loss ends the run (exit 3).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .. import postgres, runlog
from ..config import FtpLogSettings
from ..errors import EXIT_FAILED, EXIT_OK, ItemError, TransferError
from . import APPLICATION, SERVICE
from . import remote as remotes
from .ledger import HEAD_BYTES, LOADS, Ledger, decide
from .load import load_file
from .remove import removable, remove
from .rows import create_tables

log = logging.getLogger("datasync.ftp")


@dataclass
class Job:
    """What a run works with: its settings, its run record (and PostgreSQL connection), the server, the ledger."""

    settings: FtpLogSettings
    run: runlog.Run
    remote: remotes.Remote
    ledger: Ledger

    @property
    def pg(self):
        return self.run.pg  # re-opened by the run after a lost connection

    @property
    def source(self):
        return self.settings.ftp.url


@dataclass
class FileResult:
    """One file's line in the run's details and summary."""

    path: str
    action: str                # young, unchanged, new, resumed, rewritten, gone, failed
    status: str = "ok"         # ok, partial, failed
    loaded: int = 0
    rejected: int = 0
    bytes: int = 0
    seconds: float = 0.0
    removed: str = ""          # deleted, archived, kept (changed since loaded), gone, or "delete failed"
    error: str | None = None

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if v not in (None, "", 0) or k in ("path", "status")}


def run(settings: FtpLogSettings) -> int:
    """Ingest every matching file once; return the exit code."""
    return runlog.run_job(settings, SERVICE, APPLICATION, lambda run_: ingest_all(settings, run_))


def ingest_all(settings, run_):
    """One advisory lock per server and folder; connect, make the tables, handle each file."""
    lock = f"ftp:{settings.ftp.url}{settings.ftp.remote_dir}"
    if not run_.try_lock(lock):
        log.info("another run is in progress (advisory lock %s held); exiting", lock)
        return EXIT_OK
    remote = remotes.connect(settings.ftp, settings.common)
    try:
        logs = settings.logs
        log.info("%s (%s), PostgreSQL %s (%s, %s.%s)", remote.what, remote.version(), postgres.server_version(run_.pg),
                 settings.postgres.db, logs.target_schema, logs.target_table)
        create_tables(run_.pg, logs)
        code = ingest(Job(settings, run_, remote, Ledger(run_, settings.ftp.url).read()))
    except BaseException:
        remote.abort()  # stopping (a signal, an error): no waiting for a server that may be stuck
        raise
    remote.close()
    return code


def ingest(job):
    """Handle every listed file, then log the summary; exit 1 when a file failed or could not be removed."""
    started, results = time.monotonic(), []
    try:
        for f in job.remote.listing():
            results.append(handle(job, f))
    finally:
        job.run.details = [r.as_dict() for r in results
                           if r.action not in ("young", "unchanged") or r.removed or r.error]
    summary(results, time.monotonic() - started)
    ok = all(r.status != "failed" and r.removed != "delete failed" for r in results)
    return EXIT_OK if ok else EXIT_FAILED


def handle(job, f):
    """Decide, load and remove one file; a failure is confined to it.

    Each step runs in ``run.attempt``: whatever fails is rolled back, a lost PostgreSQL
    connection is re-opened (and the server's too) and the step tried once more, and driver
    errors arrive as ItemError -- a lock wait past LOCK_TIMEOUT too.
    """
    started = time.monotonic()
    try:
        remotes.check_name(f.path)
        result = job.run.attempt(f.path, lambda: decide_and_load(job, f), on_reconnect=job.remote.reopen)
    except ItemError as exc:
        job.remote.reopen()  # an abandoned transfer leaves the connection out of step
        if isinstance(exc, TransferError) and vanished(job.remote, f.path):
            return gone(f)
        return failed(job, f, str(exc), started)
    if removable(job.settings.ftp, job.ledger.get(f.path), f):
        result.removed = remove_loaded(job, f)
    return result


def remove_loaded(job, f):
    """DELETE_AFTER_SYNC for a file whose lines are committed; how it went ('deleted', 'kept', ...)."""
    try:
        return job.run.attempt(f.path, lambda: remove(job.remote, job.ledger, job.settings.ftp, f),
                               on_reconnect=job.remote.reopen)
    except ItemError as exc:  # the ledger could not take note (the server's refusals are handled in remove)
        log.warning("%s: %s; it stays loaded in the ledger and the next run tries again", f.path, exc)
        return "delete failed"


def decide_and_load(job, f):
    """The file's decision, and its load when it has new lines."""
    started = time.monotonic()
    d = decide(f, job.ledger.get(f.path), job.settings.ftp.min_file_age,
               lambda: job.remote.head(f.path, HEAD_BYTES))
    if not d.loads:
        if d.kind == "young":
            log.info("%s: %s; left for a later run", f.path, d.note)
        else:
            log.debug("%s: unchanged%s", f.path, f" ({d.note})" if d.note else "")
        if d.retimed:  # only the time changed: remember it, skip the head read next time
            job.ledger.note(f.path, mtime=f.mtime)
        return FileResult(f.path, d.kind)
    loaded = load_file(job, f, d)
    return FileResult(f.path, d.kind, "ok" if loaded.offset == loaded.size else "partial", loaded.loaded,
                      loaded.rejected, loaded.received, time.monotonic() - started)


def vanished(remote, path):
    """True when ``path``, whose transfer failed, is no longer on the server."""
    try:
        return remote.stat(path) is None
    except TransferError:
        return False


def gone(f):
    """A file that could not be read because it is no longer there: someone deleted or moved it."""
    log.info("%s: gone from the server since the listing (deleted or moved); nothing to load", f.path)
    return FileResult(f.path, "gone")


def failed(job, f, error, started):
    """Log a failed file and note it in the ledger; the next run tries again."""
    again = "" if error.endswith("the next run tries again") else ", the next run tries again"
    log.error("%s: %s; nothing from this attempt was kept%s", f.path, error, again)
    try:
        job.run.attempt(f.path, lambda: job.ledger.note(f.path, last_error=error, last_run_id=job.run.id))
    except ItemError as exc:
        log.warning("%s: could not note the failure in the ledger: %s", f.path, exc)
    return FileResult(f.path, "failed", "failed", seconds=time.monotonic() - started, error=error)


def summary(results, seconds):
    """The run's last line: files by outcome, lines, bytes, time."""
    count = {}
    for r in results:
        count[r.action] = count.get(r.action, 0) + 1
    loaded = sum(r.action in LOADS for r in results)
    log.info("files: %s seen, %s loaded, %s unchanged, %s too young, %s gone, %s deleted or archived, %s failed; "
             "lines: %s loaded, %s rejected; %s bytes in %.1fs",
             len(results), loaded, count.get("unchanged", 0), count.get("young", 0), count.get("gone", 0),
             sum(r.removed in ("deleted", "archived") for r in results), count.get("failed", 0),
             sum(r.loaded for r in results), sum(r.rejected for r in results), sum(r.bytes for r in results), seconds)
