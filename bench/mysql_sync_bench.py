#!/usr/bin/env python3
"""Benchmark mysql_sync_service.py: full loads against a raw pipe and pgloader, incremental runs,
diff runs against a full reload, and (--employees) a database shaped like MySQL's employees sample.

Generates a 9-column table `bench` in a throwaway MySQL database (cursor column updated_at:
incremental mode) and `bench_diff`, the same rows without updated_at (a key and no cursor
column: diff mode), then measures -- every ratio from figures of the same run:

  bench, incremental mode
    first load       a new table: CREATE, COPY FREEZE, key and index, ANALYZE (best of --repeat;
                     the copy and its state are dropped between runs)
    raw pipe         `mariadb --quick --batch | psql \\copy` into a bare table: a reference, not a
                     gate (first load / raw pipe was <= 1.5 in issue 2)
    pgloader         when installed: first load <= 0.6x pgloader
    reload in place  --full-refresh: DELETE + COPY in one transaction (for reference)
    incremental 1%   1% of the rows updated, delete check on: <= 0.2x the first load
    0.1% deleted     the key comparison over every key <= 3 s
  bench_diff, diff mode (issue 12 point 8).  "A full reload" is the in-place reload of the same
  table: MYSQL_SYNC_MODES=bench_diff=full on the existing copy (DELETE + COPY in one transaction,
  every row written); the first load (a new table, COPY FREEZE, digests computed) is printed too.
    idle run         nothing changed: <= 0.3x a full reload
    0.1% changed     updates, deletes and inserts (a third each) picked at random by a hash of the
                     key: <= 0.45x a full reload
    WAL              of the run <= 10% of a full reload's: the WAL records that touch the bench
                     database's relations (pg_walinspect, read back through a temporary physical
                     replication slot held for the run, so a checkpoint cannot recycle it first);
                     the cluster's pg_wal_lsn_diff(pg_current_wal_lsn()) is printed too
    rows written     n_tup_ins + n_tup_upd + n_tup_del of the copy (pg_stat_user_tables) ~ rows changed
    MySQL CPU        utime + stime of the MySQL server process over an idle run (/proc/<pid>/stat)
    state size       datasync.mysql_buckets (heap and index, this table's rows only) per million rows
    digest query     the diff's MySQL query timed alone, and its parts (scan, COPY text, SHA2, GROUP BY)
  peak RSS of the service at --small and at --rows rows (loads, incremental and diff runs):
    <= 150 MB and flat
  --employees: six tables shaped like the employees sample database (about 3.9M rows, composite
    keys, CHAR/VARCHAR/DATE/ENUM columns, no cursor column), generated inside MySQL: first load,
    full reload in place, idle run, a run with 0.1% of salaries and titles changed, --full-refresh.

Noise: the servers are shared.  The cluster's WAL and the MySQL CPU (the whole server process's)
include what other clients of the same servers do meanwhile; nothing is subtracted, but the WAL
others write in a pause just before each run is shown, and the WAL ratios use this database's
records when pg_walinspect is there.  Times are the best of --repeat runs (noise only adds time).

    python bench/mysql_sync_bench.py [--rows 1000000] [--small 100000] [--repeat 3]
                                     [--mysql {mariadb,mysql}] [--employees] [--employees-scale 1.0]
Servers: TEST_MYSQL_HOST/PORT/USER/PASSWORD (MariaDB), TEST_ORACLE_MYSQL_HOST/PORT/USER/PASSWORD
(--mysql mysql), TEST_POSTGRES_HOST/PORT/USER (loopback defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import MyDB, base_env  # noqa: E402
from tests.servers import MYSQL_KINDS, mysql_server, postgres_server  # noqa: E402

TABLE = """CREATE TABLE bench (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), amount DECIMAL(12,2),
  qty INT, ratio DOUBLE, created_at DATETIME, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
  ON UPDATE CURRENT_TIMESTAMP(6), note TEXT, KEY idx_updated (updated_at))"""
DIFF_TABLE = """CREATE TABLE bench_diff (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128),
  amount DECIMAL(12,2), qty INT, ratio DOUBLE, created_at DATETIME, note TEXT)"""
DIFF_COLUMNS = "id, name, email, amount, qty, ratio, created_at, note"
PG_TABLE = """CREATE TABLE raw_bench (id int, name varchar(64), email varchar(128), amount numeric(12,2), qty int,
  ratio double precision, created_at timestamp, updated_at timestamptz, note text)"""
STATE = "datasync"  # the service's state schema (DATASYNC_STATE_SCHEMA default)
APPLICATION = "datasync mysql_sync"
PAUSE = 0.5  # seconds before each observed run in which the cluster's background WAL is measured

TARGETS = {  # the gates, as printed next to each figure
    "pgloader": 0.6, "incremental": 0.2, "delete_check": 3.0, "rss": 150,
    "idle": 0.3, "changed": 0.45, "wal": 0.10,
}
REFERENCE_RAW_PIPE = 1.5  # issue 2's figure; shown, not a gate


# ---------------------------------------------------------------- running things


class Timed(NamedTuple):
    seconds: float
    rss: float     # peak RSS of the child, MB
    cpu: float     # user + system CPU seconds of the child
    out: str
    code: int = 0  # exit code


LAUNCHER = """import json, os, subprocess, sys, time
started = time.monotonic()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
out = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
json.dump({"seconds": time.monotonic() - started, "peak_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
           "code": os.waitstatus_to_exitcode(status), "out": out.decode(errors="replace")}, sys.stdout)
"""


def timed(cmd, env=None, shell=False, check=True):
    """Run a command to its end: Timed(seconds, peak RSS MB, CPU seconds, output, exit code); a failure
    stops the bench unless ``check`` is false.

    A small launcher starts the command and times it: a child forked straight from the bench would
    count the bench's own memory (before its exec) in its peak RSS.
    """
    launch = ["/bin/sh", "-c", cmd] if shell else list(cmd)
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *launch], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the launcher failed for {cmd}:\n{done.stderr}")
    result = json.loads(done.stdout)
    if result["code"] != 0 and check:
        raise SystemExit(f"command failed: {cmd}\n{result['out']}")
    return Timed(result["seconds"], result["peak_kb"] / 1024, result["cpu"], result["out"], result["code"])


def best(runs):
    """The fastest of several runs (a shared VM's noise only ever adds time)."""
    return min(runs, key=lambda r: r.seconds)


def psql_admin(pgsrv, statement):
    subprocess.run(["psql", "-h", pgsrv.host, "-p", str(pgsrv.port), "-U", pgsrv.user, "-d", "postgres", "-qc",
                    statement], check=True)


# ---------------------------------------------------------------- what a run costs besides time


def mysql_pid(server):
    """The PID of the MySQL server process listening on the server's port (None when not found)."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{server.port}"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        out = ""
    found = re.search(r"pid=(\d+)", out)
    if found:
        return int(found[1])
    for name in ("mariadbd", "mysqld"):
        pids = subprocess.run(["pidof", name], capture_output=True, text=True).stdout.split()
        if len(pids) == 1:
            return int(pids[0])
    return None


def process_cpu(pid):
    """utime + stime of a process in seconds (/proc/<pid>/stat), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wal_lsn(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        return cur.fetchone()[0]


def wal_since(conn, lsn):
    """Bytes of WAL the cluster wrote since ``lsn`` (every database's: other clients add to it)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint", (lsn,))
        return cur.fetchone()[0]


def enable_walinspect(conn):
    """(pg_walinspect usable, this database's OID): the extension created in the bench database."""
    with conn.cursor() as cur:
        cur.execute("SELECT oid FROM pg_database WHERE datname = current_database()")
        dboid = cur.fetchone()[0]
        try:
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            return True, dboid
        except psycopg2.Error as exc:
            print(f"pg_walinspect not available ({str(exc).strip()}): WAL is the whole cluster's", file=sys.stderr)
            return False, dboid


def wal_pair(run, reload):
    """(WAL of the run, WAL of the reload, how it was measured): this database's records when both
    runs have them, else the cluster's LSN difference for both."""
    if run.own_wal is not None and reload.own_wal is not None:
        return run.own_wal, reload.own_wal, "this database's WAL records (pg_walinspect)"
    return run.wal, reload.wal, "the whole cluster's WAL (other clients add)"


def table_writes(conn, schema, tables):
    """{table: n_tup_ins + n_tup_upd + n_tup_del} from pg_stat_user_tables (a fresh statistics snapshot)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                    "WHERE schemaname = %s AND relname = ANY(%s)", (schema, list(tables)))
        found = dict(cur.fetchall())
    return {t: found.get(t, 0) for t in tables}


def settled_writes(conn, schema, tables, timeout=5.0):
    """table_writes once the service's backends are gone and their statistics flushed.

    A backend flushes its table statistics when it exits, a moment after the service does:
    wait for the service's sessions to leave pg_stat_activity, then for two equal readings.
    """
    deadline = time.monotonic() + timeout
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE %s AND pid <> pg_backend_pid()", (APPLICATION + "%",))
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.05)
    previous = table_writes(conn, schema, tables)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        current = table_writes(conn, schema, tables)
        if current == previous:
            return current
        previous = current
    return previous


@dataclass
class Run:
    """One service run and what it cost."""

    seconds: float
    rss: float               # MB, peak of the service process
    cpu: float               # CPU seconds of the service process (Python, PyMySQL, psycopg2)
    mysql_cpu: float | None  # CPU seconds of the MySQL server process during the run
    wal: int                 # bytes of WAL written by the cluster during the run
    written: int             # rows inserted + updated + deleted in the copies
    state_written: int       # ... and in the state tables
    log: str
    code: int = 0            # the service's exit code
    background_wal: int = 0  # WAL the cluster wrote in a pause before the run, scaled to the run's duration
    own_wal: int | None = None  # bytes of WAL records touching this database's relations (pg_walinspect)

    def tables(self):
        """{table: (seconds, buckets changed, rows re-read)} from diff mode's log line of each table."""
        found = re.findall(r" (\w+): diff: \d+ rows in (\d+) buckets \([^)]*\) compared, (\d+|all) changed, (\d+) "
                           r"rows re-read \(([\d.]+)s\)", self.log)
        return {t: (float(seconds), int(n if b == "all" else b), int(r)) for t, n, b, r, seconds in found}

    def diff_seconds(self):
        """The seconds diff mode's own log lines give (compare, re-read, merge), summed over tables."""
        return sum(seconds for seconds, _, _ in self.tables().values())

    def re_read(self):
        """(buckets changed, rows re-read), summed over the run's diff tables."""
        figures = self.tables().values()
        return sum(b for _, b, _ in figures), sum(r for _, _, r in figures)


# ---------------------------------------------------------------- one bench database pair


class Bench:
    """A throwaway MySQL database and PostgreSQL database, the service's environment for them, and
    an autocommit PostgreSQL connection that watches WAL and table statistics."""

    def __init__(self, mysrv, pgsrv, prefix="bench"):
        self.mysrv, self.pgsrv = mysrv, pgsrv
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.my = MyDB(mysrv, self.name)
        self.schema = self.name  # the copies' schema: MYSQL_DB, lower case
        self.mysql_pid = mysql_pid(mysrv)
        self.env = base_env(MYSQL_HOST=mysrv.host, MYSQL_PORT=mysrv.port, MYSQL_USER=mysrv.user,
                            MYSQL_PASSWORD=mysrv.password, MYSQL_DB=self.name, POSTGRES_HOST=pgsrv.host,
                            POSTGRES_PORT=pgsrv.port, POSTGRES_USER=pgsrv.user, POSTGRES_DB=self.name)
        self.watch = None

    def __enter__(self):
        MyDB(self.mysrv, None).run(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
        psql_admin(self.pgsrv, f'CREATE DATABASE "{self.name}"')
        self.watch = psycopg2.connect(host=self.pgsrv.host, port=self.pgsrv.port, user=self.pgsrv.user,
                                      dbname=self.name)
        self.watch.autocommit = True
        self.walinspect, self.dboid = enable_walinspect(self.watch)
        return self

    def __exit__(self, *exc):
        self.watch.close()
        MyDB(self.mysrv, None).run(f"DROP DATABASE IF EXISTS `{self.name}`")
        psql_admin(self.pgsrv, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def sync(self, *args, tables="*", modes="", check=True):
        """One run of the service over ``tables`` (MYSQL_TABLES), with MYSQL_SYNC_MODES ``modes``."""
        env = {**self.env, "MYSQL_TABLES": tables, "MYSQL_SYNC_MODES": modes}
        return timed([sys.executable, str(ROOT / "mysql_sync_service.py"), *args], env, check=check)

    def observed(self, *args, tables, modes="", check=True):
        """A run of the service with its WAL, rows written and MySQL CPU (and the WAL others wrote
        in a pause of PAUSE seconds just before, as a measure of the noise)."""
        background = self.background_wal()
        copies, state = tables.split(","), ("mysql_tables", "mysql_buckets", "runs")
        writes, state_writes = table_writes(self.watch, self.schema, copies), table_writes(self.watch, STATE, state)
        with self.wal_kept():
            lsn, cpu = wal_lsn(self.watch), process_cpu(self.mysql_pid)
            t = self.sync(*args, tables=tables, modes=modes, check=check)
            mysql_cpu = None if cpu is None else process_cpu(self.mysql_pid) - cpu
            wal, own = wal_since(self.watch, lsn), self.own_wal(lsn)
        after = settled_writes(self.watch, self.schema, copies)
        state_after = table_writes(self.watch, STATE, state)
        return Run(t.seconds, t.rss, t.cpu, mysql_cpu, wal, sum(after.values()) - sum(writes.values()),
                   sum(state_after.values()) - sum(state_writes.values()), t.out, t.code,
                   round(background * t.seconds), own)

    def background_wal(self):
        """Bytes a second of WAL the cluster writes without us, measured over a pause of PAUSE seconds."""
        lsn = wal_lsn(self.watch)
        time.sleep(PAUSE)
        return wal_since(self.watch, lsn) / PAUSE

    @contextlib.contextmanager
    def wal_kept(self):
        """Keep the WAL written meanwhile (a temporary physical replication slot, dropped at the end and
        with this session), so that pg_walinspect can still read it when a checkpoint came between."""
        if not self.walinspect:
            yield
            return
        slot = f"{self.name}_wal"
        with self.watch.cursor() as cur:
            cur.execute("SELECT pg_create_physical_replication_slot(%s, true, true)", (slot,))
        try:
            yield
        finally:
            with self.watch.cursor() as cur:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))

    def own_wal(self, lsn):
        """Bytes of the WAL records since ``lsn`` that touch this database's relations (pg_walinspect:
        other databases' records left out; commit records, which name no relation, too), or None."""
        if not self.walinspect:
            return None
        try:
            with self.watch.cursor() as cur:
                cur.execute("SELECT coalesce(sum(record_length), 0)::bigint FROM "
                            "pg_get_wal_records_info(%s, pg_current_wal_flush_lsn()) WHERE block_ref LIKE %s",
                            (lsn, f"%/{self.dboid}/%"))
                return cur.fetchone()[0]
        except psycopg2.Error as exc:
            print(f"pg_walinspect: {str(exc).strip()}; the cluster's WAL is used", file=sys.stderr)
            return None

    def forget(self, table):
        """Drop a copy and its state, so that the next run loads it as a new table."""
        with self.watch.cursor() as cur:
            cur.execute(f'DROP TABLE IF EXISTS "{self.schema}"."{table}"')
            for state in ("mysql_tables", "mysql_buckets"):
                cur.execute("SELECT to_regclass(%s)", (f"{STATE}.{state}",))
                if cur.fetchone()[0]:
                    cur.execute(f"DELETE FROM {STATE}.{state} WHERE source_table = %s", (table,))

    def state_size(self, table):
        """(buckets, bytes of their rows, bytes of mysql_buckets on disk: heap, index and free space)."""
        with self.watch.cursor() as cur:
            cur.execute(f"SELECT count(*), coalesce(sum(pg_column_size(b.*)), 0), "
                        f"pg_total_relation_size('{STATE}.mysql_buckets') FROM {STATE}.mysql_buckets b "
                        "WHERE source_table = %s", (table,))
            return cur.fetchone()


# ---------------------------------------------------------------- data


def generate(my, rows):
    """The 9-column `bench` table, doubled inside MySQL (INSERT ... SELECT) up to ``rows`` rows."""
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


def derive_diff_table(my):
    """`bench_diff`: the rows of the freshly generated `bench`, without its cursor column."""
    my.run(DIFF_TABLE, f"INSERT INTO bench_diff ({DIFF_COLUMNS}) SELECT {DIFF_COLUMNS} FROM bench ORDER BY id")


@dataclass
class Changes:
    deleted: int = 0
    updated: int = 0
    inserted: int = 0

    @property
    def rows(self):
        return self.deleted + self.updated + self.inserted

    def __add__(self, other):
        return Changes(self.deleted + other.deleted, self.updated + other.updated, self.inserted + other.inserted)

    def __str__(self):
        return f"{self.rows:,} rows ({self.updated:,} updated, {self.deleted:,} deleted, {self.inserted:,} inserted)"


def change_at_random(my, table, key, fraction, round_no, set_clause, insert_sql):
    """Delete, update and insert about a third of ``fraction`` of the rows each, picked at random (by
    CRC32 of the key and a salt of this round), so the changes spread over the whole key range.

    The sets are disjoint: deletes first, then updates of rows that remain, then inserts of new
    keys (``insert_sql``: an INSERT IGNORE ... SELECT with {picked}, reading rows of ``table``).
    """
    every = max(1, round(3 / fraction))

    def picked(salt):
        return f"MOD(CRC32(CONCAT_WS(',', {', '.join(key)}, '{salt}{round_no}')), {every}) = 0"

    conn = my.connect()
    try:
        with conn.cursor() as cur:
            deleted = cur.execute(f"DELETE FROM {table} WHERE {picked('d')}")
            updated = cur.execute(f"UPDATE {table} SET {set_clause} WHERE {picked('u')}")
            inserted = cur.execute(insert_sql.format(picked=picked("i")))
    finally:
        conn.close()
    return Changes(deleted, updated, inserted)


def change_bench_diff(my, rows, fraction, round_no):
    """0.1% (``fraction``) of bench_diff changed at random; new keys above every earlier round's."""
    offset = rows * (round_no + 1)
    insert = (f"INSERT IGNORE INTO bench_diff ({DIFF_COLUMNS}) SELECT id + {offset}, name, email, amount, qty, "
              f"ratio, created_at, note FROM bench_diff WHERE id <= {rows} AND {{picked}}")
    return change_at_random(my, "bench_diff", ["id"], fraction, round_no,
                            "qty = qty + 1, name = CONCAT(name, '*')", insert)


# ---------------------------------------------------------------- bench: full, raw pipe, pgloader, incremental


def measure(mysrv, pgsrv, rows, with_baselines, repeat=1):
    """Every figure at one size: the `bench` (incremental) and `bench_diff` (diff) tables."""
    out = {"rows": rows}
    with Bench(mysrv, pgsrv) as b:
        generate(b.my, rows)
        derive_diff_table(b.my)
        out.update(measure_first_load(b, repeat))
        out["reload"] = best([b.sync("--full-refresh", tables="bench") for _ in range(repeat)])
        out.update(measure_incremental(b, repeat))
        out["diff"] = measure_diff(b, rows, repeat, with_costs=with_baselines)
        if with_baselines:
            out["export_costs"] = export_costs(b, "bench")
            out["raw_pipe"] = raw_pipe(mysrv, pgsrv, b.name, repeat)
            out["pgloader"] = pgloader(mysrv, pgsrv, b.name) if shutil.which("pgloader") else None
    return out


def measure_first_load(b, repeat):
    """The first load of `bench` (a new table), best of ``repeat``: the copy and its state dropped between."""
    runs = []
    for i in range(repeat):
        if i:
            b.forget("bench")
        runs.append(b.observed(tables="bench"))
    return {"full": best(runs), "rss_full": max(r.rss for r in runs)}


def measure_incremental(b, repeat):
    """Incremental runs with 1% of the rows updated (delete check on), then one after 0.1% were deleted."""
    out = {}
    runs = []
    for _ in range(repeat):  # each run: 1% of the rows changed since the previous one
        b.my.run("UPDATE bench SET qty = qty + 1 WHERE MOD(id, 100) = 0")
        runs.append(b.sync(tables="bench"))
    out["incremental"] = best(runs)
    out["rss_incr"] = max(r.rss for r in runs)
    counted = re.search(r"delete check: the key sets match .*\(([\d.]+)s\)", out["incremental"].out)
    out["count_check"] = float(counted[1]) if counted else None
    b.my.run("DELETE FROM bench WHERE MOD(id, 1000) = 7")
    out["incremental_deletes"] = b.sync(tables="bench")
    found = re.search(r"delete check over \d+ keys: (\d+) deleted in ([\d.]+)s", out["incremental_deletes"].out)
    out["deleted"], out["delete_check"] = int(found[1]), float(found[2])
    return out


def pgloader(mysrv, pgsrv, mydb):
    """pgloader into a database of its own: (seconds, peak RSS MB), or the reason it could not run.

    pgloader 3.6 cannot create a table whose default is CURRENT_TIMESTAMP(6) (it aborts,
    yet exits 0), so it gets a CREATE TABLE ... SELECT copy: same rows and types, plain defaults.
    It checks that pgloader really loaded every row.
    """
    target = f"pgloader_{uuid.uuid4().hex[:8]}"
    source = MyDB(mysrv, None)
    rows = MyDB(mysrv, mydb).value("SELECT COUNT(*) FROM bench")
    source.run(f"CREATE DATABASE `{target}`", f"CREATE TABLE `{target}`.bench AS SELECT * FROM `{mydb}`.bench",
               f"ALTER TABLE `{target}`.bench ADD PRIMARY KEY (id), ADD KEY idx_updated (updated_at), "
               "MODIFY updated_at TIMESTAMP(6) NULL DEFAULT NULL")
    psql_admin(pgsrv, f'CREATE DATABASE "{target}"')
    password = f":{mysrv.password}" if mysrv.password else ""
    try:
        t = timed(["pgloader", f"mysql://{mysrv.user}{password}@{mysrv.host}:{mysrv.port}/{target}",
                   f"postgresql://{pgsrv.user}@{pgsrv.host}:{pgsrv.port}/{target}"])
        if not re.search(rf"Total import time\s+\S+\s+{rows}\b", t.out):
            errors = [line for line in t.out.splitlines() if " ERROR " in line]
            return f"did not load {rows} rows: {errors[0].split(' ERROR ', 1)[1] if errors else t.out[-300:]}"
        return t
    finally:
        psql_admin(pgsrv, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        source.run(f"DROP DATABASE IF EXISTS `{target}`")


def raw_pipe(mysrv, pgsrv, mydb, repeat):
    """Best of ``repeat`` runs of `mariadb --batch | psql \\copy` into an empty plain table."""
    psql = f"psql -h {pgsrv.host} -p {pgsrv.port} -U {pgsrv.user} -d {mydb} -q"
    subprocess.run(f"{psql} -c '{PG_TABLE}'", shell=True, check=True)
    env = {**os.environ, "MYSQL_PWD": mysrv.password}
    runs = []
    for _ in range(repeat):
        subprocess.run(f"{psql} -c 'TRUNCATE raw_bench'", shell=True, check=True)
        runs.append(timed(f"mariadb -h {mysrv.host} -P {mysrv.port} -u {mysrv.user} {mydb} --quick --batch "
                          f"--skip-column-names -e 'SELECT * FROM bench' | "
                          f"{psql} -c \"\\copy raw_bench FROM STDIN WITH (NULL 'NULL')\"", env, shell=True))
    return best(runs)


# ---------------------------------------------------------------- bench_diff: diff mode against a full reload


def measure_diff(b, rows, repeat, with_costs=False, fraction=0.001):
    """Diff mode on `bench_diff`: first load, idle runs, runs with ``fraction`` of the rows changed,
    the full reload in place they are compared with, and a run comparing every row."""
    table = "bench_diff"
    out = {"rows": rows}
    out["first"] = b.observed(tables=table)
    out["state"] = b.state_size(table)
    out["nothing"] = best([b.observed(tables="no_such_table") for _ in range(repeat)])
    out["idle"] = best([b.observed(tables=table) for _ in range(repeat)])
    out["changed"], out["changes"] = measure_changed(b, rows, repeat, fraction)
    out["reload"] = best([b.observed(tables=table, modes=f"{table}=full") for _ in range(repeat)])
    out["refresh"] = b.observed("--full-refresh", tables=table)  # back to diff: compares every row
    if with_costs:
        buckets = out["changed"].re_read()[0]
        out["costs"] = digest_costs(b, table, buckets)
    return out


def measure_changed(b, rows, repeat, fraction):
    """Best of ``repeat`` diff runs, each after its own random changes: (Run, Changes of that run)."""
    runs = []
    for round_no in range(repeat):
        changes = change_bench_diff(b.my, rows, fraction, round_no)
        runs.append((b.observed(tables="bench_diff"), changes))
    return min(runs, key=lambda r: r[0].seconds)


@contextlib.contextmanager
def product_plan(b, table):
    """(job, plan) of the product for one table: its own SQL, on a MySQL session set up as the service's."""
    from datasync.config import load_mysql_sync
    from datasync.mysql.commands import open_job
    from datasync.mysql.sync import prepare

    job = open_job(load_mysql_sync({**b.env, "MYSQL_TABLES": table}))
    try:
        yield job, prepare(job, [table], [])[0]
    finally:
        job.source.close()
        job.pg.close()


def digest_costs(b, table, changed_buckets):
    """The diff's MySQL query timed alone, and its parts, on the product's own SQL and session.

    {"queries": [(what, seconds, MySQL CPU seconds)], "explain", "buckets", "bucketing"}: a plain
    COUNT(*), the COPY text, the text hashed (SHA2, and CRC32 for comparison), the raw columns hashed,
    the bucket expression and grouping, the whole digest query (and, for key ranges, the same with hash
    buckets for comparison), and the re-read of ``changed_buckets`` buckets as a change run reads them.
    """
    from datasync.mysql.copy import Export
    from datasync.mysql.keys import Bucketing
    from datasync.mysql.modes import diff

    with product_plan(b, table) as (job, plan):
        with b.watch.cursor() as cur:
            cur.execute(f"SELECT buckets, bucket_width FROM {STATE}.mysql_tables WHERE source_table = %s", (table,))
            bucketing = Bucketing(*(value or 0 for value in cur.fetchone()))
            cur.execute(f"SELECT bucket FROM {STATE}.mysql_buckets WHERE source_table = %s ORDER BY 1", (table,))
            numbers = [row[0] for row in cur.fetchall()]
        export = Export(plan, plan.columns, job.source.max_packet)
        line, copy_line = export.digest_line(), export.line()
        sha = f"CAST(CONV(LEFT(SHA2({line}, 256), 16), 16, 10) AS UNSIGNED)"
        raw = "CONCAT_WS('\\t', " + ", ".join(f"`{c.column}`" for c in plan.columns) + ")"
        source = f"FROM `{table}`"
        digest = diff.digest_sql(job, plan, bucketing)
        some = sorted(random.Random(1).sample(numbers, min(changed_buckets, len(numbers))))
        queries = [
            ("COUNT(*)", f"SELECT COUNT(*) {source}"),
            ("COPY text of every row", f"SELECT COUNT(*), SUM(LENGTH({copy_line})) {source}"),
            ("digest text of every row", f"SELECT COUNT(*), SUM(LENGTH({line})) {source}"),
            ("  + CRC32 (for comparison)", f"SELECT COUNT(*), BIT_XOR(CRC32({line})) {source}"),
            ("  + SHA2, no grouping", f"SELECT COUNT(*), BIT_XOR({sha}) {source}"),
            ("SHA2 of the raw columns (no COPY text)",
             f"SELECT COUNT(*), BIT_XOR(CAST(CONV(LEFT(SHA2({raw}, 256), 16), 16, 10) AS UNSIGNED)) {source}"),
            ("bucket expression and grouping only", f"SELECT {bucketing.mysql(plan)}, COUNT(*) {source} GROUP BY 1"),
            (f"the digest query ({bucketing.describe()})", digest),
        ]
        if bucketing.width:
            hashed = Bucketing(diff.bucket_count(len(numbers) * diff.ROWS_PER_BUCKET))
            queries.append((f"  with {hashed.describe()} instead", diff.digest_sql(job, plan, hashed)))
        join, where = bucketing.mysql_rows(plan, some) if some else ("", "FALSE")
        queries.append((f"re-read of {len(some)} buckets", f"SELECT COUNT(*), SUM(LENGTH({copy_line})) {source}{join}"
                        + (f" WHERE {where}" if where else "")))
        costs = [(what, *time_mysql(job.source, b.mysql_pid, statement)) for what, statement in queries]
        explain = job.source.execute("EXPLAIN " + digest)
        return {"table": table, "queries": costs, "explain": explain, "buckets": len(numbers),
                "bucketing": bucketing.describe()}


def export_costs(b, table):
    """What a full load asks of MySQL, timed alone: [(what, seconds, MySQL CPU seconds)].

    The export's COPY lines and its tail column (see copy.py) summed instead of sent, and the
    key-set digest an incremental table's delete check computes after every full load.
    """
    from datasync.mysql.copy import Export
    from datasync.mysql.modes import incremental

    with product_plan(b, table) as (job, plan):
        export = Export(plan, plan.columns, job.source.max_packet)
        source, tail = f"FROM `{table}`", export.tail() or "''"
        queries = [("COUNT(*)", f"SELECT COUNT(*) {source}"),
                   ("COPY lines", f"SELECT COUNT(*), SUM(LENGTH({export.line()})) {source}"),
                   ("COPY lines and tail", f"SELECT COUNT(*), SUM(LENGTH({export.line()})), "
                                           f"SUM(LENGTH({tail})) {source}"),
                   ("key-set digest (delete check)", incremental.key_digest_sql(plan))]
        return [(what, *time_mysql(job.source, b.mysql_pid, statement)) for what, statement in queries]


def time_mysql(source, pid, statement):
    """(seconds, MySQL server CPU seconds) of one statement, best of two (the first also warms the cache)."""
    runs = []
    for _ in range(2):
        cpu, started = process_cpu(pid), time.monotonic()
        source.execute_raw(statement, warnings=True)
        seconds = time.monotonic() - started
        runs.append((seconds, None if cpu is None else process_cpu(pid) - cpu))
    return min(runs)


# ---------------------------------------------------------------- the employees-sized case


EMPLOYEES_DDL = [
    "CREATE TABLE employees (emp_no INT NOT NULL, birth_date DATE NOT NULL, first_name VARCHAR(14) NOT NULL, "
    "last_name VARCHAR(16) NOT NULL, gender ENUM('M','F') NOT NULL, hire_date DATE NOT NULL, PRIMARY KEY (emp_no))",
    "CREATE TABLE departments (dept_no CHAR(4) NOT NULL, dept_name VARCHAR(40) NOT NULL, PRIMARY KEY (dept_no), "
    "UNIQUE KEY dept_name (dept_name))",
    "CREATE TABLE dept_manager (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL, "
    "to_date DATE NOT NULL, PRIMARY KEY (emp_no, dept_no), KEY dept_no (dept_no))",
    "CREATE TABLE dept_emp (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL, "
    "to_date DATE NOT NULL, PRIMARY KEY (emp_no, dept_no), KEY dept_no (dept_no))",
    "CREATE TABLE titles (emp_no INT NOT NULL, title VARCHAR(50) NOT NULL, from_date DATE NOT NULL, to_date DATE, "
    "PRIMARY KEY (emp_no, title, from_date))",
    "CREATE TABLE salaries (emp_no INT NOT NULL, salary INT NOT NULL, from_date DATE NOT NULL, "
    "to_date DATE NOT NULL, PRIMARY KEY (emp_no, from_date))",
]
EMPLOYEE_TABLES = "employees,departments,dept_manager,dept_emp,titles,salaries"
EMPLOYEES = 300_024
FIRST = ("'Georgi', 'Bezalel', 'Parto', 'Chirstian', 'Kyoichi', 'Anneke', 'Tzvetan', 'Saniya', 'Sumant', "
         "'Duangkaew', 'Mary', 'Patricio', 'Eberhardt', 'Berni', 'Guoxiang', 'Kazuhito'")
LAST = ("'Facello', 'Simmel', 'Bamford', 'Koblick', 'Maliniak', 'Preusig', 'Zielinski', 'Kalloufi', 'Peac', "
        "'Piveteau', 'Sluis', 'Bridgland', 'Terkki', 'Genin', 'Nooteboom', 'Cappelletti'")
TITLES = "'Senior Engineer', 'Staff', 'Engineer', 'Senior Staff', 'Assistant Engineer', 'Technique Leader', 'Manager'"
DEPARTMENTS = [("d001", "Marketing"), ("d002", "Finance"), ("d003", "Human Resources"), ("d004", "Production"),
               ("d005", "Development"), ("d006", "Quality Management"), ("d007", "Sales"), ("d008", "Research"),
               ("d009", "Customer Service")]


def employee_columns(e):
    """The columns of employee number ``e`` (an SQL expression), as functions of it alone."""
    return (f"{e}, '1952-02-01' + INTERVAL MOD({e} * 37, 4748) DAY, ELT(1 + MOD({e} * 7, 16), {FIRST}), "
            f"ELT(1 + MOD({e} * 11, 16), {LAST}), IF(MOD({e}, 5) < 3, 'M', 'F'), "
            f"'1985-01-01' + INTERVAL MOD({e} * 53, 5110) DAY")


def generate_employees(my, scale=1.0):
    """Six tables shaped like MySQL's employees sample database, generated inside MySQL.

    employees (300,024 at scale 1) doubled by INSERT ... SELECT; the others INSERT ... SELECT
    from it: 9 departments, 24 managers, one department per employee and a second for 10.5%
    (dept_emp ~331k), one title and a second for 48% (titles ~444k), 1 to 18 yearly salaries
    (salaries ~2.85M).  No foreign keys (the service copies none); no cursor column: diff mode.
    """
    count = max(24, round(EMPLOYEES * scale))
    last = 10000 + count
    my.run(*EMPLOYEES_DDL, f"INSERT INTO employees VALUES ({employee_columns('10001')})")
    n = 1
    while n < count:
        my.run(f"INSERT INTO employees SELECT {employee_columns(f'emp_no + {n}')} FROM employees "
               f"WHERE emp_no + {n} <= {last}")
        n *= 2
    dept = "CONCAT('d00', 1 + MOD(emp_no * 3{}, 9))"
    my.run("INSERT INTO departments VALUES " + ", ".join(f"('{d}', '{name}')" for d, name in DEPARTMENTS),
           f"INSERT INTO dept_manager SELECT emp_no, {dept.format('')}, hire_date, '9999-01-01' FROM employees "
           "WHERE emp_no <= 10024",
           f"INSERT INTO dept_emp SELECT emp_no, {dept.format('')}, hire_date, IF(MOD(emp_no, 1000) < 105, "
           "hire_date + INTERVAL 3 YEAR, '9999-01-01') FROM employees",
           f"INSERT INTO dept_emp SELECT emp_no, {dept.format(' + 1')}, hire_date + INTERVAL 3 YEAR, '9999-01-01' "
           "FROM employees WHERE MOD(emp_no, 1000) < 105",
           f"INSERT INTO titles SELECT emp_no, ELT(1 + MOD(emp_no, 7), {TITLES}), hire_date, IF(MOD(emp_no, 100) < "
           "48, hire_date + INTERVAL 5 YEAR, NULL) FROM employees",
           f"INSERT INTO titles SELECT emp_no, ELT(1 + MOD(emp_no + 1, 7), {TITLES}), hire_date + INTERVAL 5 YEAR, "
           "NULL FROM employees WHERE MOD(emp_no, 100) < 48",
           "CREATE TABLE _years (k INT PRIMARY KEY)", "INSERT INTO _years VALUES (0)")
    n = 1
    while n < 18:
        my.run(f"INSERT INTO _years SELECT k + {n} FROM _years WHERE k + {n} < 18")
        n *= 2
    my.run("INSERT INTO salaries SELECT STRAIGHT_JOIN e.emp_no, 40000 + MOD(e.emp_no * (y.k + 3) * 131, 60000), "
           "e.hire_date + INTERVAL y.k YEAR, IF(y.k = MOD(e.emp_no * 7, 18), '9999-01-01', "
           "e.hire_date + INTERVAL y.k + 1 YEAR) FROM employees e JOIN _years y ON y.k <= MOD(e.emp_no * 7, 18) "
           "ORDER BY e.emp_no, y.k", "DROP TABLE _years")


def employee_rows(my):
    """{table: rows} of the six tables."""
    return {t: my.value(f"SELECT COUNT(*) FROM {t}") for t in EMPLOYEE_TABLES.split(",")}


def change_employees(my, fraction, round_no):
    """``fraction`` of salaries and of titles changed at random (a third each deleted, updated, inserted)."""
    shift = f"INTERVAL {36500 + round_no} DAY"  # new keys: a century and a round later
    salaries = change_at_random(
        my, "salaries", ["emp_no", "from_date"], fraction, round_no, "salary = salary + 1",
        f"INSERT IGNORE INTO salaries SELECT emp_no, salary, from_date + {shift}, to_date FROM salaries "
        "WHERE from_date < '2050-01-01' AND {picked}")
    titles = change_at_random(
        my, "titles", ["emp_no", "title", "from_date"], fraction, round_no,
        "to_date = IFNULL(to_date, '9999-01-01') - INTERVAL 1 DAY",
        f"INSERT IGNORE INTO titles SELECT emp_no, title, from_date + {shift}, to_date FROM titles "
        "WHERE from_date < '2050-01-01' AND {picked}")
    return salaries + titles


def measure_employee_changes(b, repeat, fraction):
    """Best of ``repeat`` runs, each after its own changes: (Run, Changes)."""
    runs = []
    for round_no in range(repeat):
        changes = change_employees(b.my, fraction, round_no)
        runs.append((b.observed(tables=EMPLOYEE_TABLES), changes))
    return min(runs, key=lambda r: r[0].seconds)


def measure_employees(mysrv, pgsrv, scale, repeat, fraction=0.001):
    """The employees-sized case: first load, idle runs, runs with changes, the full reload in place."""
    tables = EMPLOYEE_TABLES
    out = {}
    with Bench(mysrv, pgsrv, prefix="employees") as b:
        started = time.monotonic()
        generate_employees(b.my, scale)
        out["generated"] = time.monotonic() - started
        out["rows"] = employee_rows(b.my)
        out["first"] = b.observed(tables=tables)
        sizes = [b.state_size(t) for t in tables.split(",")]
        out["state"] = sum(s[1] for s in sizes), sizes[0][2]  # the rows' bytes; mysql_buckets on disk
        b.sync(tables=tables)  # the first incremental run records the key-set digests (untimed)
        out["idle"] = best([b.observed(tables=tables) for _ in range(repeat)])
        out["changed"], out["changes"] = measure_employee_changes(b, repeat, fraction)
        out["reload"] = best([b.observed(tables=tables, modes="*=full") for _ in range(repeat)])
        out["refresh"] = b.observed("--full-refresh", tables=tables)
        out["costs"] = digest_costs(b, "salaries", out["changed"].tables()["salaries"][1])
    return out


# ---------------------------------------------------------------- the report


def verdict(value, limit, unit=""):
    """'(target <= 0.3: met)' or '(target <= 0.3: MISSED)'."""
    return f"(target <= {limit:g}{unit}: {'met' if value <= limit else 'MISSED'})"


def mb(nbytes):
    return nbytes / 1e6


def print_bench(args, big, small):
    """The full sync, raw pipe, pgloader, incremental and RSS lines."""
    full, rows = big["full"].seconds, args.rows
    print(f"\nrows: {rows:,} (9 columns), MySQL server: {args.mysql}; times: best of {args.repeat} runs")
    first = big["full"]
    cpu = "n/a" if first.mysql_cpu is None else f"{first.mysql_cpu:.2f} s"
    print(f"first load (new)    {full:7.2f} s  {rows / full:12,.0f} rows/s  peak RSS {big['rss_full']:6.1f} MB"
          f"  (CREATE, COPY FREEZE, key and index; MySQL CPU {cpu}, Python CPU {first.cpu:.2f} s)")
    print(f"reload in place     {big['reload'].seconds:7.2f} s  ratio to first load  "
          f"{big['reload'].seconds / full:.2f}  (--full-refresh: DELETE + COPY, one transaction)")
    raw = big["raw_pipe"].seconds
    print(f"raw pipe            {raw:7.2f} s  ratio first/raw     {full / raw:.2f}"
          f"  (reference {REFERENCE_RAW_PIPE:g}, not a gate)")
    loader = big["pgloader"]
    if isinstance(loader, Timed):
        print(f"pgloader            {loader.seconds:7.2f} s  ratio first/pgloader {full / loader.seconds:.2f}  "
              f"{verdict(full / loader.seconds, TARGETS['pgloader'])}  peak RSS {loader.rss:.0f} MB")
    elif loader is None:
        print("pgloader            not installed (apt-get install pgloader): the 0.6x target is not measured")
    else:
        print(f"pgloader            could not run here: {loader}")
    incr = big["incremental"].seconds
    print(f"incremental (1%)    {incr:7.2f} s  ratio to first load  {incr / full:.2f}  "
          f"{verdict(incr / full, TARGETS['incremental'])}  (to the reload in place "
          f"{incr / big['reload'].seconds:.2f})")
    if big["count_check"] is not None:
        print(f"  of which delete check by key-set digests {big['count_check']:.2f} s (no deletes)")
    print(f"incremental, 0.1% deleted {big['incremental_deletes'].seconds:5.2f} s; key comparison "
          f"{big['delete_check']:.2f} s over {rows:,} keys, {big['deleted']:,} deleted "
          f"{verdict(big['delete_check'], TARGETS['delete_check'], ' s')}")
    print("  what a full load asks of MySQL, timed alone (best of 2):   seconds  MySQL CPU")
    print_queries(big["export_costs"])
    peak_small = max(small["rss_full"], small["rss_incr"], *rss_of(small["diff"]))
    peak_big = max(big["rss_full"], big["rss_incr"], *rss_of(big["diff"]))
    print(f"peak RSS            {peak_small:6.1f} MB at {args.small:,} rows, {peak_big:.1f} MB at {rows:,} rows "
          f"(every run: loads, incremental, diff) {verdict(max(peak_small, peak_big), TARGETS['rss'], ' MB')}, "
          f"{'flat' if peak_big <= 1.2 * peak_small else 'NOT flat'}")


def rss_of(diff):
    return [diff[k].rss for k in ("first", "idle", "changed", "reload", "refresh")]


def run_line(label, run, reference=None, target=None):
    """One diff-section line: time, ratio to the full reload, WAL, rows written, MySQL CPU, RSS."""
    ratio = ""
    if reference is not None:
        ratio = f"{run.seconds / reference.seconds:5.2f}x reload"
        ratio += f" {verdict(run.seconds / reference.seconds, target)}" if target else ""
    cpu = "n/a" if run.mysql_cpu is None else f"{run.mysql_cpu:5.2f} s"
    own = "n/a" if run.own_wal is None else f"{mb(run.own_wal):8.2f}"
    return (f"{label:<24}{run.seconds:7.2f} s  {ratio:<40}  WAL {own} MB (cluster {mb(run.wal):8.2f})  "
            f"rows written {run.written:>9,}  "
            f"MySQL CPU {cpu}  Python CPU {run.cpu:5.2f} s  RSS {run.rss:5.1f} MB")


def print_diff(d, small):
    """The diff-mode section (issue 12 point 8)."""
    reload, idle, changed = d["reload"], d["idle"], d["changed"]
    print(f"\ndiff mode: bench_diff, the same {d['rows']:,} rows without the cursor column; \"a full reload\" is "
          "the in-place reload of the existing copy (MYSQL_SYNC_MODES=bench_diff=full: DELETE + COPY)")
    print(run_line("full reload in place", reload))
    print(run_line("first load (new table)", d["first"], reload) + "  (COPY FREEZE, then digests of every bucket)")
    print(run_line("idle diff run", idle, reload, TARGETS["idle"]))
    print(run_line("0.1% changed", changed, reload, TARGETS["changed"]))
    print(run_line("--full-refresh", d["refresh"], reload) + "  (every row re-read and compared)")
    buckets, re_read = changed.re_read()
    print(f"  0.1% changed: {d['changes']}; {buckets:,} buckets changed, {re_read:,} rows re-read")
    print_wal([("idle", idle), ("0.1% changed", changed)], reload)
    expected = d["changes"].rows
    print(f"  rows written: {changed.written:,} for {expected:,} rows changed "
          f"(ratio {changed.written / max(1, expected):.2f}, target ~1); idle run {idle.written:,} (target 0); "
          f"reload {reload.written:,}; state rows written by the change run {changed.state_written:,}")
    if idle.mysql_cpu is not None:
        print(f"  MySQL CPU of an idle run: {idle.mysql_cpu:.2f} s of {idle.seconds:.2f} s "
              f"(the reload's: {reload.mysql_cpu:.2f} s; the server process's total: other clients add)")
    n, row_bytes, disk = d["state"]
    print(f"  state: {n:,} buckets, {mb(row_bytes) * 1e6 / d['rows']:.2f} MB of rows per million rows; "
          f"datasync.mysql_buckets on disk after the first load {mb(disk) * 1e6 / d['rows']:.2f} MB per million "
          "rows (heap + primary key)")
    rss = rss_of(d) + rss_of(small)
    print(f"  peak RSS of diff runs: {max(rss_of(small)):.1f} MB at {small['rows']:,} rows, {max(rss_of(d)):.1f} MB "
          f"at {d['rows']:,} rows {verdict(max(rss), TARGETS['rss'], ' MB')}")
    print(f"  idle run: {idle.diff_seconds():.2f} s in diff mode's compare (its log line); a run with no table "
          f"(process start, connections, state) takes {d['nothing'].seconds:.2f} s; 0.1% changed: "
          f"{changed.diff_seconds():.2f} s compare + re-read + merge")
    if "costs" in d:
        print_costs(d["costs"])
        print_breakdown(d)


def print_queries(queries):
    for what, seconds, cpu in queries:
        print(f"    {what:<40}{seconds:7.2f}  {'n/a' if cpu is None else f'{cpu:7.2f}'}")


def print_costs(costs):
    """Where the digest query's time goes, in MySQL alone."""
    print(f"  in MySQL alone ({costs['table']}, {costs['buckets']:,} buckets, {costs['bucketing']}; best of 2):"
          "  seconds  MySQL CPU")
    print_queries(costs["queries"])
    for row in costs["explain"]:
        print("    EXPLAIN: " + " | ".join(str(v) for v in row))


def print_wal(runs, reload):
    """The WAL lines: each run's share of the full reload's WAL."""
    for label, run in runs:
        ours, theirs, how = wal_pair(run, reload)
        share = ours / theirs
        print(f"  WAL of the {label} run: {mb(ours):.2f} MB = {100 * share:.2f}% of the reload's {mb(theirs):.0f} MB "
              f"{verdict(share, TARGETS['wal'])}; {how}; the cluster's: {mb(run.wal):.2f} MB, of which others wrote "
              f"about {mb(run.background_wal):.2f} MB at the rate of the pause before")


def print_breakdown(d):
    """The idle and change runs split by what was timed alone (the rest: PostgreSQL, Python, start-up)."""
    costs = {what: seconds for what, seconds, _ in d["costs"]["queries"]}
    digest = next(seconds for what, seconds in costs.items() if what.startswith("the digest query"))
    re_read = next(seconds for what, seconds in costs.items() if what.startswith("re-read"))
    idle, changed, nothing = d["idle"].seconds, d["changed"].seconds, d["nothing"].seconds
    print(f"  idle run {idle:.2f} s ~ start-up and connections {nothing:.2f} + digest query {digest:.2f} + rest "
          f"{idle - nothing - digest:.2f} (bucket state read and compared in Python, state written)")
    print(f"  change run {changed:.2f} s ~ start-up {nothing:.2f} + digest query {digest:.2f} + re-read scan "
          f"{re_read:.2f} + rest {changed - nothing - digest - re_read:.2f} (stage COPY, PostgreSQL merge, state)")


def print_employees(e, scale):
    """The employees-sized case."""
    rows = sum(e["rows"].values())
    print(f"\nemployees-sized: {rows:,} rows in 6 tables (" + ", ".join(f"{t} {n:,}" for t, n in e["rows"].items())
          + f"), generated in MySQL in {e['generated']:.0f} s (scale {scale:g}); diff mode, whole database per run")
    reload = e["reload"]
    print(run_line("full reload in place", reload) + "  (MYSQL_SYNC_MODES=*=full)")
    print(run_line("first load (new)", e["first"], reload))
    print(run_line("idle diff run", e["idle"], reload, TARGETS["idle"]))
    print(run_line("0.1% changed", e["changed"], reload, TARGETS["changed"]))
    print(run_line("--full-refresh", e["refresh"], reload) + "  (every row re-read and compared)")
    print(f"  0.1% of salaries and of titles changed: {e['changes']}; rows written {e['changed'].written:,}; "
          f"{e['changed'].re_read()[0]:,} buckets changed, {e['changed'].re_read()[1]:,} rows re-read")
    for label in ("idle", "changed"):
        print(f"  {label} run per table (diff log line): " + ", ".join(
            f"{t} {seconds:.2f} s" for t, (seconds, _, _) in sorted(e[label].tables().items(), key=lambda i: -i[1][0])))
    print_wal([("idle", e["idle"]), ("0.1% changed", e["changed"])], reload)
    print(f"  state: {mb(e['state'][0]) * 1e6 / rows:.2f} MB of bucket rows per million rows; mysql_buckets on "
          f"disk {mb(e['state'][1]):.1f} MB after the first load")
    print_costs(e["costs"])


def load_average():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class LoadSampler(threading.Thread):
    """The 1-minute load average every ``every`` seconds while the bench runs (the machine is shared)."""

    def __init__(self, every=10.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.done = every, [], threading.Event()

    def run(self):
        while not self.done.wait(self.every):
            self.samples.append(float(load_average().split()[0]))

    def summary(self):
        self.done.set()
        if not self.samples:
            return "no samples"
        return (f"min {min(self.samples):.2f}, mean {sum(self.samples) / len(self.samples):.2f}, "
                f"max {max(self.samples):.2f} over {len(self.samples)} samples")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs: best of this many")
    parser.add_argument("--mysql", choices=MYSQL_KINDS, default="mariadb", help="the MySQL server to read from")
    parser.add_argument("--employees", action="store_true", help="also the employees-sized case (several minutes)")
    parser.add_argument("--employees-scale", type=float, default=1.0, help="its size (1.0: about 3.9M rows)")
    args = parser.parse_args()
    mysrv, pgsrv = mysql_server(args.mysql), postgres_server()
    sampler = LoadSampler()
    sampler.start()
    loads = [load_average()]
    big = measure(mysrv, pgsrv, args.rows, True, args.repeat)
    loads.append(load_average())
    small = measure(mysrv, pgsrv, args.small, False)
    loads.append(load_average())
    employees = measure_employees(mysrv, pgsrv, args.employees_scale, args.repeat) if args.employees else None
    if employees:
        loads.append(load_average())
    print_bench(args, big, small)
    print_diff(big["diff"], small["diff"])
    if employees:
        print_employees(employees, args.employees_scale)
    print(f"\nload average (1, 5, 15 min) at the start and after each part: {'; '.join(loads)} "
          f"({os.cpu_count()} CPUs); 1-minute load average every 10 s: {sampler.summary()}")


if __name__ == "__main__":
    main()
