"""Reading variables: the environment over an optional ``.env`` file, ``NAME_FILE`` values,
and a ``Reader`` that validates each value and collects *every* problem before failing."""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from ..errors import ConfigError
from .variables import REQUIRED, VARIABLES


def read_environment(environ=None, env_file=".env"):
    """Return the effective environment: the process's, over an optional .env file."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(environ.get("DATASYNC_ENV_FILE") or env_file)
    if path.is_file():
        merged = {k: v for k, v in dotenv_values(path).items() if v is not None}
        merged.update(environ)
        return merged
    return environ


@dataclass(frozen=True)
class Secret:
    """A string that never shows itself in repr(), str() or logs."""

    value: str = field(repr=False)

    def __repr__(self):
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self):
        return bool(self.value)


class Reader:
    """Reads declared variables from an environment, collecting every problem."""

    def __init__(self, env):
        self.env = env
        self.problems = []

    def raw(self, name):
        var = VARIABLES[name]
        file_var = f"{name}_FILE"
        if self.env.get(file_var):
            if self.env.get(name):
                return self.fail(name, f"set either {name} or {file_var}, not both")
            return self._read_secret_file(file_var)
        value = self.env.get(name, "")
        if value == "":
            if var.default is REQUIRED:
                return self.fail(name, "is required")
            return var.default
        return value

    def _read_secret_file(self, file_var):
        path = self.env[file_var]
        try:
            text = Path(path).read_bytes().decode("utf-8")  # bytes: a carriage return stays one
        except (OSError, UnicodeDecodeError) as exc:
            return self.fail(file_var, f"cannot read {path}: {exc.__class__.__name__}")
        return text[:-1] if text.endswith("\n") else text  # one trailing newline, as editors add

    def fail(self, name, message):
        self.problems.append(f"{name} {message}")
        return None

    def str(self, name):
        return self.raw(name)

    def secret(self, name):
        value = self.raw(name)
        return Secret(value or "")

    def int(self, name, lo=None, hi=None):
        value = self.raw(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            return self.fail(name, f"must be a whole number, got {value!r}")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            return self.fail(name, f"must be between {lo} and {hi}, got {number}")
        return number

    def float(self, name, lo=0.0):
        value = self.raw(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            return self.fail(name, f"must be a number, got {value!r}") if value is not None else None
        if number < lo:
            return self.fail(name, f"must be at least {lo}, got {number}")
        return number

    def bool(self, name):
        value = self.raw(name)
        if value is None:
            return None
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return self.fail(name, f"must be true or false, got {value!r}")

    def choice(self, name, choices):
        value = self.raw(name)
        if value is not None and value.lower() not in choices:
            return self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value.lower() if value is not None else None

    def list(self, name):
        value = self.raw(name) or ""
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def path(self, name):
        value = self.raw(name)
        if value and not Path(value).is_file():
            return self.fail(name, f"file not found: {value}")
        return value or ""

    def regex(self, name):
        value = self.raw(name)
        if not value:
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            return self.fail(name, f"is not a valid regular expression: {exc}")

    def reported(self, name):
        """True when a problem with ``name`` was already recorded."""
        return any(p.startswith(f"{name} ") for p in self.problems)

    def done(self):
        if self.problems:
            raise ConfigError(list(dict.fromkeys(self.problems)))  # a variable read twice is reported once

    def encoding(self, name):
        """A codec that keeps b"\\n" as the line end (UTF-16 and friends cannot be split on bytes)."""
        value = self.str(name)
        try:
            if value and "\n".encode(value) == b"\n" and b"a\n".decode(value) == "a\n":
                return codecs.lookup(value).name
        except (LookupError, UnicodeError):
            pass
        return self.fail(name, f"must be an ASCII-compatible encoding such as utf-8, cp1252 or latin-1, got {value!r}")

    def timezone(self, name):
        value = self.str(name)
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            return self.fail(name, f"is not a known time zone (such as UTC or Europe/Berlin), got {value!r}")
