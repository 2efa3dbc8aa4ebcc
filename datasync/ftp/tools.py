"""The read-only commands of ftp_log_service.py: --status and --dry-run."""

from __future__ import annotations

from datetime import UTC, datetime

from .. import postgres, runlog, state
from ..errors import EXIT_OK
from ..report import escape_controls, format_table, runs_table
from . import remote as remotes
from .ingest import APPLICATION, SERVICE, Job, decide, listing, removable


def status(settings):
    """Print the last runs and the most recent files of the ledger (control characters in names escaped)."""
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
              f["lines_loaded"], f["lines_rejected"], f["last_loaded"], f["deleted_at"], f["last_error"]]
             for f in files]))
        return EXIT_OK
    finally:
        pg.close()


def dry_run(settings):
    """List every matching file and what a run would do with it (names escaped); change nothing anywhere."""
    run = runlog.Run(settings, SERVICE, APPLICATION)
    run.pg = run.connect()
    job = Job(settings, run)
    try:
        schema = settings.postgres.state_schema
        if state.schema_exists(job.pg, schema):
            job.ledger = state.file_states(job.pg, schema, job.source)
        job.remote = remotes.connect(settings.ftp, settings.common)
        rows = []
        now = datetime.now(UTC)
        for f in listing(job):
            d = decide(job, f, job.ledger.get(f.path))
            plan = {"load": f"load {d.why} from byte {d.offset}", "young": "wait: " + d.why}.get(d.action, d.action)
            remove = "archive" if settings.ftp.archive_dir else "delete"
            if removable(job, f):
                plan += f", then {remove}"
            elif settings.ftp.delete_after_sync and d.action == "load":
                plan += f", then {remove} if every line is complete"
            rows.append([escape_controls(f.path), f.size, f.mtime and round((now - f.mtime).total_seconds()), plan])
        print(format_table(["file", "size", "age s", "this run would"], rows))
        return EXIT_OK
    finally:
        if job.remote is not None:
            job.remote.close()
        run.close()
