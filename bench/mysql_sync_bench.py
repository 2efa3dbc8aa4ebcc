#!/usr/bin/env python3
"""Benchmark mysql_sync_service.py against a raw `mariadb | psql COPY` pipe and pgloader.

Generates a 9-column table in a throwaway MySQL database, then measures:
  full sync (this service), raw pipe, pgloader (when installed), an incremental run with
  1% of rows changed, the delete check over all keys, and peak RSS at two sizes.
Targets (issue #2): full <= 1.5x raw pipe and <= 0.6x pgloader; incremental <= 10% of full;
delete check <= 3 s; peak RSS <= 150 MB and flat between sizes.

    python bench/mysql_sync_bench.py [--rows 1000000] [--small 100000] [--repeat 3]
Servers: TEST_MYSQL_HOST/PORT/USER/PASSWORD, TEST_POSTGRES_HOST/PORT/USER (loopback defaults).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import MyDB, PgDB, base_env  # noqa: E402
from tests.servers import mysql_server, postgres_server  # noqa: E402

TABLE = """CREATE TABLE bench (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), amount DECIMAL(12,2),
  qty INT, ratio DOUBLE, created_at DATETIME, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
  ON UPDATE CURRENT_TIMESTAMP(6), note TEXT, KEY idx_updated (updated_at))"""
PG_TABLE = """CREATE TABLE raw_bench (id int, name varchar(64), email varchar(128), amount numeric(12,2), qty int,
  ratio double precision, created_at timestamp, updated_at timestamptz, note text)"""


def generate(my, rows):
    # rows last changed in the past (as in a real table), so an incremental run reads only what changes
    my.run(TABLE, "INSERT INTO bench (id, name, email, amount, qty, ratio, created_at, updated_at, note) VALUES "
           "(1, 'name 1', 'user1@example.com', 0.01, 1, 0.142857, '2024-01-01', '2024-01-01', 'x')")
    n = 1
    while n < rows:
        my.run(f"INSERT INTO bench (id, name, email, amount, qty, ratio, created_at, updated_at, note) "
               f"SELECT id + {n}, CONCAT('name ', id + {n}), CONCAT('user', id + {n}, '@example.com'), "
               f"(id + {n}) / 100, MOD(id + {n}, 1000), (id + {n}) / 7, created_at + INTERVAL {n} SECOND, "
               f"updated_at + INTERVAL {n} SECOND, REPEAT('x', MOD(id + {n}, 50)) FROM bench WHERE id + {n} <= {rows}")
        n *= 2


def timed(cmd, env=None, shell=False):
    """(seconds, peak RSS MB of the child, output)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {cmd}\n{out}")
    return seconds, usage.ru_maxrss / 1024, out


def sync(env, *args):
    return timed([sys.executable, str(ROOT / "mysql_sync_service.py"), *args], env)


def measure(mysrv, pgsrv, rows, with_baselines, repeat=1):
    my = MyDB(mysrv, f"bench_{uuid.uuid4().hex[:8]}")
    pg = PgDB(pgsrv, f"bench_{uuid.uuid4().hex[:8]}")
    admin_my = MyDB(mysrv, None)
    admin_my.run(f"CREATE DATABASE `{my.name}` CHARACTER SET utf8mb4")
    psql_admin(pgsrv, f'CREATE DATABASE "{pg.name}"')
    out = {}
    try:
        generate(my, rows)
        env = base_env(MYSQL_HOST=mysrv.host, MYSQL_PORT=mysrv.port, MYSQL_USER=mysrv.user,
                       MYSQL_PASSWORD=mysrv.password, MYSQL_DB=my.name, POSTGRES_HOST=pgsrv.host,
                       POSTGRES_PORT=pgsrv.port, POSTGRES_USER=pgsrv.user, POSTGRES_DB=pg.name)
        # best of `repeat` (the first creates the table, the others reload it with --full-refresh):
        # a shared VM's noise only ever adds time, to this service and to the raw pipe alike
        runs = [sync(env, *(["--full-refresh"] if i else [])) for i in range(repeat)]
        out["full"], out["rss_full"] = min(r[0] for r in runs), max(r[1] for r in runs)
        incremental = []
        for _ in range(repeat):  # each run: 1% of the rows changed since the previous one
            my.run("UPDATE bench SET qty = qty + 1 WHERE MOD(id, 100) = 0")
            incremental.append(sync(env))
        out["incremental"], out["rss_incr"], log = min(incremental)
        counted = re.search(r"delete check: \d+ rows on both sides, nothing deleted \(([\d.]+)s", log)
        out["count_check"] = float(counted[1])
        my.run("DELETE FROM bench WHERE MOD(id, 1000) = 7")
        out["incremental_deletes"], _, log = sync(env)
        out["delete_check"] = float(re.search(r"delete check over \d+ keys: \d+ deleted in ([\d.]+)s", log)[1])
        if with_baselines:
            out["raw_pipe"] = raw_pipe(mysrv, pgsrv, my.name, pg.name, repeat)
            if shutil.which("pgloader"):
                out["pgloader"], out["rss_pgloader"] = pgloader(mysrv, pgsrv, my.name)
    finally:
        admin_my.run(f"DROP DATABASE IF EXISTS `{my.name}`")
        psql_admin(pgsrv, f'DROP DATABASE IF EXISTS "{pg.name}" WITH (FORCE)')
    return out


def psql_admin(pgsrv, statement):
    subprocess.run(["psql", "-h", pgsrv.host, "-p", str(pgsrv.port), "-U", pgsrv.user, "-d", "postgres", "-qc",
                    statement], check=True)


def pgloader(mysrv, pgsrv, mydb):
    """pgloader into a database of its own; checks it really loaded every row.

    pgloader 3.6 cannot create a table whose default is CURRENT_TIMESTAMP(6) (it aborts,
    yet exits 0), so it gets a CREATE TABLE ... SELECT copy: same rows and types, plain defaults.
    """
    target = f"pgloader_{uuid.uuid4().hex[:8]}"
    source = MyDB(mysrv, None)
    conn = MyDB(mysrv, mydb).connect()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM bench")
        rows = cur.fetchone()[0]
    conn.close()
    source.run(f"CREATE DATABASE `{target}`", f"CREATE TABLE `{target}`.bench AS SELECT * FROM `{mydb}`.bench",
               f"ALTER TABLE `{target}`.bench ADD PRIMARY KEY (id), ADD KEY idx_updated (updated_at), "
               "MODIFY updated_at TIMESTAMP(6) NULL DEFAULT NULL")
    psql_admin(pgsrv, f'CREATE DATABASE "{target}"')
    try:
        seconds, rss, log = timed(["pgloader", f"mysql://{mysrv.user}@{mysrv.host}:{mysrv.port}/{target}",
                                   f"postgresql://{pgsrv.user}@{pgsrv.host}:{pgsrv.port}/{target}"])
        if not re.search(rf"Total import time\s+\S+\s+{rows}\b", log):
            raise SystemExit(f"pgloader did not load {rows} rows:\n{log[-2000:]}")
        return seconds, rss
    finally:
        psql_admin(pgsrv, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        source.run(f"DROP DATABASE IF EXISTS `{target}`")


def raw_pipe(mysrv, pgsrv, mydb, pgdb, repeat):
    """Best of ``repeat`` runs of `mariadb --batch | psql \\copy` into an empty plain table."""
    psql = f"psql -h {pgsrv.host} -p {pgsrv.port} -U {pgsrv.user} -d {pgdb} -q"
    subprocess.run(f"{psql} -c '{PG_TABLE}'", shell=True, check=True)
    env = {**os.environ, "MYSQL_PWD": mysrv.password}
    best = None
    for _ in range(repeat):
        subprocess.run(f"{psql} -c 'TRUNCATE raw_bench'", shell=True, check=True)
        seconds, _, _ = timed(f"mariadb -h {mysrv.host} -P {mysrv.port} -u {mysrv.user} {mydb} --quick --batch "
                              f"--skip-column-names -e 'SELECT * FROM bench' | "
                              f"{psql} -c \"\\copy raw_bench FROM STDIN WITH (NULL 'NULL')\"", env, shell=True)
        best = seconds if best is None else min(best, seconds)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="full, raw pipe, incremental: best of this many runs")
    args = parser.parse_args()
    mysrv, pgsrv = mysql_server(), postgres_server()
    big = measure(mysrv, pgsrv, args.rows, True, args.repeat)
    small = measure(mysrv, pgsrv, args.small, False)
    rate = args.rows / big["full"]
    print(f"\nrows: {args.rows:,} (9 columns); full sync, raw pipe and incremental: best of {args.repeat} runs")
    print(f"full sync           {big['full']:7.2f} s  {rate:12,.0f} rows/s  peak RSS {big['rss_full']:6.1f} MB")
    print(f"raw pipe            {big['raw_pipe']:7.2f} s  ratio full/raw      {big['full'] / big['raw_pipe']:.2f}"
          "  (target <= 1.5)")
    if "pgloader" in big:
        print(f"pgloader            {big['pgloader']:7.2f} s  ratio full/pgloader {big['full'] / big['pgloader']:.2f}"
              f"  (target <= 0.6)  peak RSS {big['rss_pgloader']:.0f} MB")
    else:
        print("pgloader            not installed (apt-get install pgloader)")
    print(f"incremental (1%)    {big['incremental']:7.2f} s  ratio to full       "
          f"{big['incremental'] / big['full']:.2f}  (target <= 0.10)")
    print(f"  of which delete check by counts {big['count_check']:.2f} s (no deletes)")
    print(f"incremental, 0.1% deleted {big['incremental_deletes']:5.2f} s; key comparison "
          f"{big['delete_check']:.2f} s over {args.rows:,} keys (target <= 3 s)")
    print(f"peak RSS            {small['rss_full']:6.1f} MB at {args.small:,} rows, {big['rss_full']:.1f} MB at "
          f"{args.rows:,} rows (target <= 150 MB, flat)")


if __name__ == "__main__":
    main()
