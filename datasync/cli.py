"""What both entry points share: logging set-up, signal handling, exception → exit code."""

from __future__ import annotations

import logging
import signal
import sys

from .config import load_logging
from .errors import EXIT_FAILED, ConfigError, DataSyncError, Interrupted
from .report import setup_logging

log = logging.getLogger("datasync")

EXIT_CODES_HELP = """exit codes:
  0    every table/file succeeded (or another run holds the lock)
  1    at least one table/file failed (the others were synced)
  2    configuration or usage error
  3    a server could not be reached after CONNECT_RETRIES attempts
  143  stopped by SIGTERM/SIGINT (the open transaction was rolled back)"""


def _interrupt(signum, frame):
    Interrupted.received = f"stopped by {signal.Signals(signum).name}"
    raise Interrupted(Interrupted.received)


def run_main(body, environ=None) -> int:
    """Run ``body()`` (which returns an exit code) and turn every failure into one log line."""
    setup_logging(*load_logging(environ))
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return body()
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration: %s", problem)
        return exc.exit_code
    except DataSyncError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except Exception:  # noqa: BLE001 - the last line of defence: log it, exit 1
        log.exception("unexpected error")
        return EXIT_FAILED


def exit_with(code):
    logging.shutdown()
    sys.exit(code)
