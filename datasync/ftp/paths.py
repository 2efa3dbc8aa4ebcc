"""Remote paths as the settings name them: below FTP_REMOTE_DIR, matched by globs, naming a machine.

FTP_FILE_PATTERN (which files are loaded) and LOG_FORMATS (which format a file has) share one
glob matcher; FTP_MACHINE_ID_REGEX (or the first folder) gives a row's default machine_id.
Pure functions: nothing here talks to a server.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re


def relative_path(path, base):
    """``path`` below the folder ``base`` (both absolute remote paths), as the settings' globs see it."""
    return posixpath.relpath(path, base)


def path_matches(relative, patterns):
    """A path below FTP_REMOTE_DIR matches one of the globs, either whole or by its file name alone."""
    name = posixpath.basename(relative)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(relative, p) for p in patterns)


def machine_from_path(relative, pattern=None):
    """The machine a file belongs to, for rows whose fields name none.

    FTP_MACHINE_ID_REGEX (``pattern``) searched in the path below FTP_REMOTE_DIR: its group
    ``machine``, else group 1, else the whole match.  Without a pattern: the first folder
    (``press01/2024-03-01.log``), else the file name up to its first ``_`` or ``.`` (``cnc07_a.log``).
    """
    if pattern is not None:
        found = pattern.search(relative)
        if not found:
            return None
        if "machine" in pattern.groupindex:
            return found.group("machine")
        return found.group(1) if pattern.groups else found.group(0)
    folder, _, name = relative.partition("/")
    if name:
        return folder
    return re.split(r"[_.]", folder, maxsplit=1)[0] or None
