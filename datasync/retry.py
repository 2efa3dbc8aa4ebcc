"""Bounded retries with exponential backoff for connecting to servers."""

from __future__ import annotations

import logging
import time

from .errors import UnreachableError
from .report import one_line

log = logging.getLogger(__name__)


def with_retries(connect, what, common, errors, refused=None):
    """Call ``connect()`` up to CONNECT_RETRIES times; raise UnreachableError after the last.

    ``errors`` are the driver exceptions that mean "could not connect".  ``refused(exc)``
    may turn one into the error to raise at once instead (a wrong password or an unknown
    database will not get better by retrying: a ConfigError, exit 2).  Messages name the
    server (``what``) and the driver's reason, never a password.
    """
    delay = common.connect_retry_delay
    for attempt in range(1, common.connect_retries + 1):
        try:
            return connect()
        except errors as exc:
            fatal = refused(exc) if refused else None
            if fatal is not None:
                raise fatal from exc
            reason = one_line(exc)
            if attempt == common.connect_retries:
                raise UnreachableError(f"cannot connect to {what} after {attempt} attempt(s): {reason}") from exc
            log.warning("cannot connect to %s (attempt %s of %s, retrying in %.0fs): %s",
                        what, attempt, common.connect_retries, delay, reason)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
