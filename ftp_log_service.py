#!/usr/bin/env python3
"""Load the log files machines drop on an FTP, FTPS or SFTP server into PostgreSQL, every line once.

Configuration comes from the environment (and .env); see README.md.
"""

from __future__ import annotations

import argparse

from datasync.runlog import EXIT_CODES_HELP, exit_with
from datasync.runlog import main as run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="ftp_log_service.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_HELP.replace("table/file", "file"))
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="list what would be loaded or deleted; change nothing")
    action.add_argument("--status", action="store_true", help="show recent runs and files from the ledger")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def body():
        from datasync.config import load_ftp_log
        from datasync.ftp import commands, ingest

        settings = load_ftp_log()
        if args.status:
            return commands.status(settings)
        if args.dry_run:
            return commands.dry_run(settings)
        return ingest.run(settings)

    return run_main(body)


if __name__ == "__main__":
    exit_with(main())
