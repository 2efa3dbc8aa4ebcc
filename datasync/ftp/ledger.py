"""The ledger (DATASYNC_STATE_SCHEMA.ftp_files): what is known of each remote file, and what to do with it.

Per listed file, ``decide`` compares the listing with the file's ledger row:

    young      changed less than FTP_MIN_FILE_AGE seconds ago: left for a later run
    unchanged  same size and time as recorded (or only the time changed, the first bytes the same)
    new        not in the ledger, or deleted/archived since: loaded from its first byte
    resumed    grown, its first HEAD_BYTES still the same: loaded from the stored offset and line number
    rewritten  shrunk, or its first bytes changed (rotated, rewritten): a new version from its first
               byte; the rows of the earlier version stay

A load writes the file's row (``loaded_row``) in the transaction that holds its lines, so the
ledger never runs ahead of, or behind, the table.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import state

log = logging.getLogger("datasync.ftp")
HEAD_BYTES = 4096  # fingerprinted first bytes: when they change, the file was rewritten
LOADS = ("new", "resumed", "rewritten")


@dataclass(frozen=True)
class Start:
    """Where a load begins: a version's first byte, or where the last run stopped (with what it knew)."""

    offset: int = 0
    line_no: int = 1
    fmt: str | None = None     # the format and CSV header found when the version was first read
    header: str | None = None
    loaded: int = 0            # lines loaded and rejected so far in this version
    rejected: int = 0

    @classmethod
    def after(cls, row):
        """Resuming the version a ledger row describes."""
        return cls(row["offset_loaded"], row["next_line_no"], row["format"], row["header"], row["lines_loaded"],
                   row["lines_rejected"])


@dataclass(frozen=True)
class Decision:
    """What a run does with one listed file, and why."""

    kind: str                  # young, unchanged, new, resumed, rewritten
    version: int = 1
    start: Start = Start()
    head: bytes | None = None  # the first bytes, when they were read to decide
    note: str = ""             # why a file waits or is unchanged
    retimed: bool = False      # unchanged, but its time did: the ledger takes the new time

    @property
    def loads(self):
        return self.kind in LOADS


def decide(f, known, min_age, read_head) -> Decision:
    """The decision for listed file ``f`` and its ledger row ``known`` (None when there is none).

    ``read_head()`` returns the file's first HEAD_BYTES; it is called only for a file that grew
    or whose time alone changed.
    """
    age = age_of(f)
    if age is not None and age < min_age:
        return Decision("young", note=f"changed {age:.0f}s ago (FTP_MIN_FILE_AGE={min_age:g})")
    if known is None:
        return Decision("new")
    version = known["version"]
    if known["status"] in ("deleted", "archived"):
        return Decision("new", version + 1)
    if f.size < known["offset_loaded"]:
        return rewritten(f, known, f"shrank from {known['size']} to {f.size} bytes")
    if f.size == known["size"] and f.mtime == known["mtime"]:
        return Decision("unchanged", version)
    head = read_head()
    if hashlib.sha256(head[:known["head_length"]]).hexdigest() != known["head_sha256"]:
        return rewritten(f, known, "its first bytes changed (rotated or rewritten)")
    if f.size == known["size"]:
        return Decision("unchanged", version, head=head, note="same size and first bytes; only the time changed",
                        retimed=True)
    return Decision("resumed", version, Start.after(known), head)


def rewritten(f, known, why):
    log.warning("%s %s: treated as a new file (version %s); the %s lines already loaded stay",
                f.path, why, known["version"] + 1, known["lines_loaded"])
    return Decision("rewritten", known["version"] + 1)


def age_of(f):
    """Seconds since the file last changed, or None when the server gives no time."""
    return (datetime.now(UTC) - f.mtime).total_seconds() if f.mtime else None


def loaded_row(source, f, decision, loaded, run_id):
    """The ledger row after loading ``f`` (``loaded`` is the load's outcome), for its transaction."""
    head = bytes(loaded.head)
    return {
        "source": source, "remote_path": f.path, "version": decision.version, "format": loaded.fmt,
        "size": loaded.size, "mtime": f.mtime, "head_sha256": hashlib.sha256(head).hexdigest(),
        "head_length": len(head), "offset_loaded": loaded.offset,
        "lines_loaded": decision.start.loaded + loaded.loaded,
        "lines_rejected": decision.start.rejected + loaded.rejected,
        "next_line_no": loaded.next_line_no, "header": loaded.header,
        "status": "loaded" if loaded.offset == loaded.size else "partial",
        "last_loaded": datetime.now(UTC), "last_run_id": run_id, "deleted_at": None, "archived_to": None,
        "last_error": None,
    }


class Ledger:
    """The ledger rows of one server (``source``: protocol, user, host, port), as the run goes.

    ``save`` writes inside the caller's transaction; ``remember`` keeps the row once that
    transaction committed; ``note`` changes a few columns in a transaction of its own.
    """

    def __init__(self, run, source):
        self.run, self.source = run, source   # run.pg may be re-opened during the run
        self.rows = {}

    @property
    def schema(self):
        return self.run.settings.postgres.state_schema

    def read(self):
        self.rows = state.file_states(self.run.pg, self.schema, self.source)
        return self

    def get(self, path):
        return self.rows.get(path)

    def save(self, row):
        state.save_file_state(self.run.pg, self.schema, row)

    def remember(self, row):
        self.rows[row["remote_path"]] = row

    def note(self, path, **values):
        """Update some columns of a file's row (when it has one), committed at once."""
        if path not in self.rows:
            return
        state.update_file_state(self.run.pg, self.schema, self.source, path, **values)
        self.rows[path].update(values)
