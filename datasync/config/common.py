"""Settings both jobs share: the PostgreSQL target and state, logging, retries and lock waits."""

from __future__ import annotations

from dataclasses import dataclass

from .reader import Reader, Secret, read_environment

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    db: str
    user: str
    password: Secret
    sslmode: str
    sslrootcert: str
    state_schema: str  # DATASYNC_STATE_SCHEMA


@dataclass(frozen=True)
class CommonSettings:
    log_level: str
    log_json: bool
    connect_retries: int
    connect_retry_delay: float
    connect_timeout: int
    lock_timeout: int


def read_common(r: Reader) -> CommonSettings:
    return CommonSettings(
        log_level=(r.choice("LOG_LEVEL", LOG_LEVELS) or "info").upper(),
        log_json=r.bool("LOG_JSON"),
        connect_retries=r.int("CONNECT_RETRIES", 1, 100),
        connect_retry_delay=r.float("CONNECT_RETRY_DELAY"),
        connect_timeout=r.int("CONNECT_TIMEOUT", 1, 3600),
        lock_timeout=r.int("LOCK_TIMEOUT", 1, 86400),
    )


def read_postgres(r: Reader) -> PostgresSettings:
    return PostgresSettings(
        host=r.str("POSTGRES_HOST"),
        port=r.int("POSTGRES_PORT", 1, 65535),
        db=r.str("POSTGRES_DB"),
        user=r.str("POSTGRES_USER"),
        password=r.secret("POSTGRES_PASSWORD"),
        sslmode=r.choice("POSTGRES_SSLMODE", SSL_MODES),
        sslrootcert=r.path("POSTGRES_SSLROOTCERT"),
        state_schema=r.str("DATASYNC_STATE_SCHEMA"),
    )


def load_logging(environ=None):
    """(level, json) for the log set-up; invalid values fall back to INFO text (and are reported later)."""
    r = Reader(read_environment(environ))
    level, json_lines = r.choice("LOG_LEVEL", LOG_LEVELS), r.bool("LOG_JSON")
    return (level or "info").upper(), bool(json_lines)
