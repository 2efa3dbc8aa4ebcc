"""``python -m datasync.config``: what start.sh asks of the settings registry.

    cron-env JOB             print the environment lines JOB's cron file needs (values that no cron
                             line can carry are written to --env-dir and appear as NAME_FILE)
    cron-file JOB=SCHEDULE…  check the schedules and required settings, then write each job's cron
                             file (root-owned, 0600) and value files (the job user's, 0400); exit 2
                             with one line per problem before writing anything
    variables JOB            print the names of the variables JOB reads, one a line
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time

from .cron import SCHEDULE_VARIABLES, CronError, account, environment, write_cron_files, write_env_files
from .variables import JOBS, job_variables


def _assignment(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _job_schedule(text):
    job, sep, schedule = text.partition("=")
    if not sep or job not in SCHEDULE_VARIABLES:
        raise argparse.ArgumentTypeError(f"expected JOB=SCHEDULE with JOB one of {', '.join(JOBS)}, got {text!r}")
    return job, schedule


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m datasync.config", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prog", default="datasync.config", help="name that starts each problem line")
    commands = parser.add_subparsers(dest="command", required=True)

    def cron_options(sub):
        sub.add_argument("--env-dir", default="/run/datasync/env", help="folder for the NAME_FILE value files")
        sub.add_argument("--user", default=getpass.getuser(), help="the job user (owns the value files)")
        sub.add_argument("--set", dest="extra", action="append", type=_assignment, default=[], metavar="NAME=VALUE",
                         help="one more line for the cron file (start.sh's own settings)")

    env = commands.add_parser("cron-env", help="print JOB's cron environment lines")
    env.add_argument("job", choices=JOBS)
    cron_options(env)
    files = commands.add_parser("cron-file", help="write the cron files")
    files.add_argument("schedules", nargs="+", type=_job_schedule, metavar="JOB=SCHEDULE")
    files.add_argument("--cron-dir", default="/etc/cron.d")
    files.add_argument("--check", action="store_true", help="only check the settings; write nothing")
    files.add_argument("--command", required=True, help="what cron runs; the job's name is appended")
    cron_options(files)
    names = commands.add_parser("variables", help="print the variables JOB reads")
    names.add_argument("job", choices=JOBS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "variables":
            print("\n".join(job_variables(args.job)))
        elif args.command == "cron-env":
            lines, files = environment(args.job, os.environ, args.env_dir, args.extra)
            if files:
                write_env_files(files, account(args.user))
            print("\n".join(lines))
        else:
            stamp = time.strftime(" at %Y-%m-%d %H:%M:%S UTC", time.gmtime())
            done = write_cron_files(dict(args.schedules), os.environ, cron_dir=args.cron_dir, env_dir=args.env_dir,
                                    user=args.user, command=args.command, extra=args.extra, stamp=stamp,
                                    check_only=args.check)
            if done:
                print("\n".join(done))
    except CronError as exc:
        for problem in exc.problems:
            print(f"{args.prog}: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
