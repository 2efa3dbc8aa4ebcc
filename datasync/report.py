"""Logging (one line per event, text or JSON), progress, and end-of-run summary tables."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]")  # all but tab: they would break or fake a line


def escape_controls(text):
    """Control characters as escapes, so a remote file name or value can never start a new log line."""
    return CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r"}.get(m.group(), f"\\x{ord(m.group()):02x}")
                       if ord(m.group()) < 0x80 else f"\\u{ord(m.group()):04x}", text)


def one_line(exc):
    """A driver's error message on one line (they span several), or the exception's class name."""
    return " ".join(str(exc).split()) or exc.__class__.__name__


class TextFormatter(logging.Formatter):
    """One line per event: the message's control characters are escaped (a traceback follows as is)."""

    def formatMessage(self, record):  # noqa: N802 - logging's API
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when there is one)."""

    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level="INFO", json_lines=False, stream=None):
    """Send every log line to stdout (cron collects it into cron.log)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("paramiko", "pyftpdlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def format_table(headers, rows):
    """A plain-text table with right-aligned numbers, for summaries and --status."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and rows
               for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def runs_table(runs):
    """--status: the recent runs (rows of state.recent_runs) of either service."""
    return format_table(["run", "started", "finished", "status", "exit", "host", "seconds"],
                        [[r["id"], r["started_at"], r["finished_at"], r["status"], r["exit_code"], r["host"],
                          r["seconds"]] for r in runs])


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


class Progress:
    """Counts rows (or bytes) of a long copy: a tqdm bar on a terminal, else a log line every interval."""

    def __init__(self, log, label, unit="rows", interval=10.0, total=None):
        self.log, self.label, self.unit, self.interval = log, label, unit, interval
        self.count = 0
        self.started = self.last = time.monotonic()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit=unit, unit_scale=True, leave=False)

    def add(self, n):
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            rate = self.count / max(now - self.started, 1e-9)
            self.log.info("%s: %s %s so far (%s/s)", self.label, f"{self.count:,}", self.unit, f"{rate:,.0f}")

    def close(self):
        if self.bar is not None:
            self.bar.close()
