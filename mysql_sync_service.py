#!/usr/bin/env python3
"""Keep PostgreSQL an exact, incremental copy of tables from a MySQL/MariaDB database.

Configuration comes from the environment (and .env); see README.md.
"""

from __future__ import annotations

import argparse

from datasync.runlog import EXIT_CODES_HELP, exit_with
from datasync.runlog import main as run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="mysql_sync_service.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_HELP)
    parser.add_argument("--tables", help="comma-separated globs: sync only these of the selected tables")
    parser.add_argument("--full-refresh", action="store_true", help="reload every table in full mode for this run")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print the plan and DDL; write nothing")
    action.add_argument("--status", action="store_true", help="show recent runs and per-table state")
    action.add_argument("--verify", action="store_true",
                        help="compare row counts and chunked checksums; exit 1 on a difference")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def body():
        from datasync.config import load_mysql_sync
        from datasync.mysql import commands, sync

        settings = load_mysql_sync()
        tables = tuple(t.strip() for t in (args.tables or "").split(",") if t.strip())
        if args.status:
            return commands.status(settings)
        if args.dry_run:
            return commands.dry_run(settings, tables, args.full_refresh)
        if args.verify:
            return commands.verify(settings, tables)
        return sync.run(settings, tables, args.full_refresh)

    return run_main(body)


if __name__ == "__main__":
    exit_with(main())
