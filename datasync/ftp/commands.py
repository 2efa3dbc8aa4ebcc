"""The read-only commands of ftp_log_service.py: --status and --dry-run.

Both print remote names (and --status the errors, which may quote a server or a name) with their
control characters escaped: neither can split a row of the table or send escape sequences to a terminal.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .. import postgres, runlog, state
from ..errors import EXIT_OK
from ..report import escape_controls, format_table, runs_table
from . import APPLICATION, SERVICE
from . import remote as remotes
from .ledger import HEAD_BYTES, Ledger, decide
from .remove import removable


def status(settings):
    """Print the last runs and the most recent files of the ledger."""
    pg = postgres.connect(settings.postgres, settings.common, APPLICATION)
    schema = settings.postgres.state_schema
    try:
        if not state.schema_exists(pg, schema):
            print(f"no runs recorded yet (schema {schema} does not exist)")
            return EXIT_OK
        print(runs_table(state.recent_runs(pg, schema, SERVICE)))
        print()
        files = state.recent_files(pg, schema, settings.ftp.url)
        print(format_table(
            ["file", "ver", "status", "bytes loaded", "size", "lines", "rejected", "last loaded", "deleted", "error"],
            [[escape_controls(f["remote_path"]), f["version"], f["status"], f["offset_loaded"], f["size"],
              f["lines_loaded"], f["lines_rejected"], f["last_loaded"], f["deleted_at"],
              f["last_error"] and escape_controls(f["last_error"])]  # the server's text, or a name in it
             for f in files]))
        return EXIT_OK
    finally:
        pg.close()


def dry_run(settings):
    """List every matching file and what a run would do with it; change nothing anywhere."""
    run = runlog.Run(settings, SERVICE, APPLICATION)
    run.pg = run.connect()
    remote = None
    try:
        ledger = Ledger(run, settings.ftp.url)
        if state.schema_exists(run.pg, settings.postgres.state_schema):
            ledger.read()
        remote = remotes.connect(settings.ftp, settings.common)
        now = datetime.now(UTC)
        rows = [[escape_controls(f.path), f.size, f.mtime and round((now - f.mtime).total_seconds()),
                 plan(settings.ftp, remote, ledger, f)] for f in remote.listing()]
        print(format_table(["file", "size", "age s", "this run would"], rows))
        remote.close()
        return EXIT_OK
    finally:
        if remote is not None:
            remote.abort()  # a no-op after close(); on an error or a signal, no waiting for the server
        run.close()


def plan(ftp, remote, ledger, f):
    """What a run would do with one file, in words."""
    d = decide(f, ledger.get(f.path), ftp.min_file_age, lambda: remote.head(f.path, HEAD_BYTES))
    words = {"young": f"wait: {d.note}", "unchanged": "unchanged"}.get(d.kind) or \
        f"load {d.kind} from byte {d.start.offset}"
    how = "archive" if ftp.archive_dir else "delete"
    if removable(ftp, ledger.get(f.path), f):
        words += f", then {how}"
    elif ftp.delete_after_sync and d.loads:
        words += f", then {how} if every line is complete"
    return words
