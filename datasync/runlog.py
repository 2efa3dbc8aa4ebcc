"""One run lifecycle for both jobs, and the one place where exceptions become exit codes.

    exit_with(main(body))         logging, signal handling, exception -> one log line + exit code
    run_job(settings, service, application, body)
        opens the run (PostgreSQL connection, state schema, a ``runs`` row), calls
        ``body(run)`` and records its outcome -- ok, failed, unreachable or interrupted --
        after rolling back whatever was left open: an exception never leads to a commit.
        A driver error that escapes ``body`` (between items) is classified as inside one:
        a lost PostgreSQL connection ends the run 'unreachable', exit 3.
    run.attempt(label, work)      one table or file: a lost connection is re-opened and the
                                  item tried once more; other failures become ItemError

Signals: SIGTERM and SIGINT raise ``Interrupted`` in the main thread.  A statement blocked in
a driver (a PostgreSQL lock wait, a MySQL metadata lock) would only see it when it returns,
so a watcher thread, woken through ``signal.set_wakeup_fd``, also runs the registered stop
hooks at once: they cancel the running statements, and the driver call returns.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import replace

import psycopg2
import psycopg2.errors

from . import postgres, state
from .errors import (
    EXIT_FAILED,
    EXIT_OK,
    ConfigError,
    ConnectionLost,
    DataSyncError,
    Interrupted,
    ItemError,
    LockWaitTimeout,
    UnreachableError,
)
from .report import one_line, setup_logging

log = logging.getLogger("datasync")

EXIT_CODES_HELP = """exit codes:
  0    every table/file succeeded (or another run holds the lock)
  1    at least one table/file failed (the others were synced)
  2    configuration or usage error, or a login / database / key a server refused
  3    a server could not be reached after CONNECT_RETRIES attempts, or a connection was lost twice
  143  stopped by SIGTERM/SIGINT (running statements cancelled, the open transaction rolled back)"""

_stop_hooks = []
_stop_lock = threading.Lock()
_raised = False  # Interrupted was raised in the main thread
# held while the watcher runs the stop hooks, and by the main thread from its exit on: the process never
# ends while a hook is inside a driver (OpenSSL's clean-up at exit under a hook's TLS handshake: SIGSEGV)
_hooks_running = threading.Lock()
_exiting = False


# ---------------------------------------------------------------- signals


def on_stop(hook):
    """Call ``hook()`` (from the watcher thread) as soon as SIGTERM/SIGINT arrives; returns ``hook``."""
    with _stop_lock:
        _stop_hooks.append(hook)
    return hook


def forget_stop(hook):
    with _stop_lock:
        if hook in _stop_hooks:
            _stop_hooks.remove(hook)


def _interrupt(signum, frame):
    """The Python-level handler (main thread): raise Interrupted once; later signals let the clean-up finish."""
    global _raised
    Interrupted.received = Interrupted.received or f"stopped by {signal.Signals(signum).name}"
    if not _raised:
        _raised = True
        raise Interrupted(Interrupted.received)


def _watch(fd):
    """Run the stop hooks as soon as a stop signal arrives, while the main thread may be blocked in C."""
    while True:
        try:
            data = os.read(fd, 16)
        except OSError:
            return
        stops = [n for n in data if n in (signal.SIGTERM, signal.SIGINT)]
        if not data:
            return
        if stops:
            Interrupted.received = Interrupted.received or f"stopped by {signal.Signals(stops[0]).name}"
            with _hooks_running:
                if _exiting:
                    return
                _run_stop_hooks()


def _run_stop_hooks():
    with _stop_lock:
        hooks = list(_stop_hooks)
    for hook in hooks:
        try:
            hook()
        except Exception:  # noqa: BLE001 - a hook that fails must not stop the others
            log.debug("stop hook failed", exc_info=True)


def _quiesce(timeout=10.0):
    """Wait (at most ``timeout``) for stop hooks in flight, and let none start after: the process may end."""
    global _exiting
    if _hooks_running.acquire(timeout=timeout):
        _exiting = True  # the lock stays held: no hook starts any more


def install_signal_handlers():
    global _exiting
    if _exiting:  # main() ran before in this process (tests call it in-process): hooks may run again
        _exiting = False
        _hooks_running.release()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_fd,), name="stop-watcher", daemon=True).start()


# ---------------------------------------------------------------- lock waits


class LockWatch:
    """Every ``interval`` seconds, asks each probe what its connection is waiting for, and logs each new
    wait once ("waiting for a lock on ... held by ..."): a wait is bounded by LOCK_TIMEOUT, and the log
    says what it was for, so a sync blocked behind another session never sits silent."""

    def __init__(self, interval=5.0):
        self.interval, self.probes, self.seen = interval, [], set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lock-watch", daemon=True)

    def add(self, probe):
        self.probes.append(probe)
        if not self.thread.is_alive() and not self.stopped.is_set():
            self.thread.start()

    def stop(self):
        self.stopped.set()

    def _loop(self):
        while not self.stopped.wait(self.interval):
            for probe in list(self.probes):
                try:
                    wait = probe()
                except Exception:  # noqa: BLE001 - a monitor must never disturb the run
                    log.debug("lock probe failed", exc_info=True)
                    continue
                if wait and wait not in self.seen:
                    self.seen.add(wait)
                    log.warning("%s (at most LOCK_TIMEOUT)", wait)


# ---------------------------------------------------------------- entry points


def main(body, environ=None) -> int:
    """Run ``body()`` (which returns an exit code) and turn every failure into one log line."""
    from .config import load_logging

    setup_logging(*load_logging(environ))
    install_signal_handlers()
    try:
        return body()
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one log line and the exit code
        return report_failure(classify(exc))
    finally:
        _quiesce()


def report_failure(error):
    """Log a failure that ended the process (a classified exception) and return its exit code."""
    if isinstance(error, ConfigError):
        for problem in error.problems:
            log.error("configuration: %s", problem)
        return error.exit_code
    if isinstance(error, DataSyncError):
        log.error("%s", error)
        return error.exit_code
    log.error("unexpected error", exc_info=error)
    return EXIT_FAILED


def exit_with(code):
    logging.shutdown()
    sys.exit(code)


# ---------------------------------------------------------------- the run


def run_job(settings, service, application, body) -> int:
    """Open the run, call ``body(run)`` (returns the exit code), record the outcome, close."""
    run = Run(settings, service, application)
    try:
        run.open()
    except BaseException as exc:
        run.close()
        error = classify(exc)
        if error is exc:
            raise
        raise error from exc
    try:
        code = body(run)
    except BaseException as exc:  # noqa: BLE001 - classified, recorded, re-raised
        # a driver error that escaped the items (a connection lost between tables or files) means
        # what it means inside one: a lost connection is 'unreachable', exit 3
        error = classify(exc)
        run.finish(*outcome(error))
        if error is exc:
            raise
        raise error from exc
    else:
        run.finish("ok" if code == EXIT_OK else "failed", code)
        return code
    finally:
        run.close()


def outcome(error):
    """(status, exit code, error text) recorded for a run that ended with ``error`` (classified)."""
    if isinstance(error, Interrupted):
        return "interrupted", error.exit_code, None
    if isinstance(error, UnreachableError):
        return "unreachable", error.exit_code, str(error)
    if isinstance(error, DataSyncError):
        return "failed", error.exit_code, str(error)
    return "failed", EXIT_FAILED, f"unexpected error: {error.__class__.__name__}"


class Run:
    """One run of a job: its PostgreSQL connection, its ``runs`` row, its run-wide locks."""

    def __init__(self, settings, service, application):
        self.settings, self.service, self.application = settings, service, application
        self.pg = None
        self.id = None
        self.details = []          # per-item results, stored with the outcome
        self.locks = []            # session advisory locks held for the whole run
        self.watch = LockWatch()
        self.monitor = None        # a second connection, opened when a statement runs long, to see its waits
        # cancel() runs in the stop watcher's thread: closing the connection meanwhile would free what
        # psycopg2's cancel is using (a crash, SIGSEGV), so closing and cancelling take turns
        self.pg_lock = threading.Lock()

    @property
    def schema(self):
        return self.settings.postgres.state_schema

    def open(self):
        self.pg = self.connect()
        on_stop(self.cancel)
        self.watch.add(self.waiting)
        state.ensure_schema(self.pg, self.schema)
        self.id = state.start_run(self.pg, self.schema, self.service)
        return self

    def waiting(self):
        """Lock probe: what this run's PostgreSQL session waits for, and who holds it (None when nothing)."""
        pg = self.pg
        if pg is None or pg.closed:
            return None
        if self.monitor is None or self.monitor.closed:
            self.monitor = postgres.connect(self.settings.postgres, replace(self.settings.common, connect_retries=1),
                                            f"{self.application} (lock monitor)")
            self.monitor.autocommit = True
        return postgres.lock_wait(self.monitor, pg.get_backend_pid())

    def connect(self):
        return postgres.connect(self.settings.postgres, self.settings.common, self.application)

    def cancel(self):
        """Stop hook: cancel the statement this run's connection is executing, if any."""
        with self.pg_lock:
            pg = self.pg
            if pg is not None and not pg.closed:
                pg.cancel()

    def close(self):
        forget_stop(self.cancel)
        self.watch.stop()
        self.close_pg()
        if self.monitor is not None:
            self.monitor.close()

    def close_pg(self):
        """Close this run's connection (never while cancel() is using it), whatever its state."""
        with self.pg_lock:
            if self.pg is not None:
                try:
                    self.pg.close()
                except psycopg2.Error:
                    log.debug("closing a broken connection", exc_info=True)

    def reopen(self):
        """Close this run's connection and open a fresh one (raises UnreachableError)."""
        self.close_pg()
        self.pg = self.connect()
        return self.pg

    def try_lock(self, name):
        """A session advisory lock held until the run ends; False when another session holds it."""
        if not postgres.try_lock(self.pg, name):
            return False
        self.locks.append(name)
        return True

    def reconnect(self):
        """A fresh PostgreSQL connection, with the run-wide locks taken again."""
        self.reopen()
        for name in self.locks:
            if not postgres.try_lock(self.pg, name):
                raise DataSyncError(f"lost the lock {name} while reconnecting, and another run took it; "
                                    "this run stops")
        return self.pg

    def rollback(self):
        """Roll back whatever is open; a dead connection has nothing left to roll back."""
        if self.pg is None or self.pg.closed:
            return
        try:
            self.pg.rollback()
        except psycopg2.Error:
            log.debug("rollback on a broken connection", exc_info=True)

    def attempt(self, label, work, on_reconnect=None):
        """Run ``work()`` for one table or file and return its result.

        Whatever fails is rolled back first.  A lost connection (PostgreSQL, or a source that
        raises ConnectionLost) is re-opened -- ``on_reconnect()`` re-opens the source -- and
        ``work`` tried once more; a second loss ends the run (exit 3).  Driver errors leave as
        ItemError, so the caller records the item as failed and carries on.
        """
        for attempt in (1, 2):
            try:
                return work()
            except BaseException as exc:  # noqa: BLE001 - classified, rolled back, re-raised
                self.rollback()
                error = classify(exc)
                if isinstance(error, ConnectionLost) and attempt == 1:
                    log.warning("%s: %s; reconnecting and trying again", label, error)
                    self.reconnect()
                    if on_reconnect:
                        on_reconnect()
                    continue
                if isinstance(error, ConnectionLost):
                    error = ConnectionLost(f"{label}: {error} (twice); the next run tries again")
                if error is exc:
                    raise
                raise error from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def finish(self, status, code, error=None):
        """Record the outcome (after a rollback); best effort when PostgreSQL is the problem."""
        details = self.details + ([{"error": error}] if error else [])
        try:
            self.rollback()
            if self.pg is None or self.pg.closed or not postgres.usable(self.pg):
                self.reopen()
            state.finish_run(self.pg, self.schema, self.id, status, code, details)
        except (psycopg2.Error, UnreachableError, Interrupted) as exc:
            log.warning("could not record this run's outcome (%s) in %s.runs: %s", status, self.schema, one_line(exc))


def classify(exc):
    """What a failure means for the run: Interrupted, ConnectionLost, an ItemError, or itself."""
    if Interrupted.received and not isinstance(exc, Interrupted):
        return Interrupted(Interrupted.received)
    if isinstance(exc, psycopg2.Error):
        reason = one_line(exc)
        if isinstance(exc, psycopg2.errors.LockNotAvailable):
            return LockWaitTimeout(f"waited LOCK_TIMEOUT for a PostgreSQL lock ({exc.diag.message_primary}); "
                                   "the next run tries again")
        if postgres.is_connection_error(exc):
            return ConnectionLost(f"PostgreSQL connection lost: {reason}")
        return ItemError(f"PostgreSQL: {reason}")
    return exc
