"""The one exception tree: every class the services raise on purpose is defined in datasync/errors.py
and drawn in its docstring (runlog.py maps them to the exit codes)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import datasync
from datasync import errors


def test_every_exception_class_is_in_the_one_tree_errors_py_draws():
    package = Path(datasync.__file__).parent
    for path in package.rglob("*.py"):  # datasync/mysql is a namespace package: pkgutil would not walk it
        if path.stem != "__main__":
            importlib.import_module(".".join(("datasync", *path.relative_to(package).with_suffix("").parts))
                                    .removesuffix(".__init__"))

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    drawn = set(re.findall(r"^[\s│├└─]*([A-Z]\w+) ", errors.__doc__, re.M))
    classes = list(subclasses(errors.DataSyncError))
    assert [c.__name__ for c in classes if c.__module__ != "datasync.errors"] == []
    assert {c.__name__ for c in classes} - drawn == set()
