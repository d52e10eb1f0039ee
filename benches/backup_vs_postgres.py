#!/usr/bin/env python3
"""An online backup under write load: asofdb's BACKUP TO against PostgreSQL 15's pg_basebackup of
the same rows, in one run (issue #28).

Each server holds the generator's events (1M by default, 30 days; asofdb's `tx` with three
features, CHECKPOINTed so the older days are in the cold tier; PostgreSQL's `tx` a plain table).
pgbench runs single-row INSERTs (16 clients, prepared) for `--seconds`; after a third of them the
backup starts: `BACKUP TO '<dir>'` through psql, `pg_basebackup -X stream -c fast` (plain format,
fsynced, as its defaults). Printed for each: the backup's seconds and size, its MB/s, and the
INSERT latency (p50, p99, max) of the transactions that ended during the backup against those that
ended before it, from pgbench's per-transaction log; for asofdb also how long writes waited (its
log's `writes_waited_secs`). Then `asofdb restore` of the backup, timed.

Both servers are started by this script on free loopback ports (PostgreSQL: Debian's, initdb on a
temporary directory, installed if missing).

Usage: python3 benches/backup_vs_postgres.py [--rows 1000000] [--seconds 30]
                                             [--binary target/release/asofdb]
"""

import argparse
import glob
import os
import subprocess
import tempfile
import threading
import time

from pgbench_vs_postgres import TX_DDL, generated_transactions, postgres_bin, psql, start_asofdb, start_postgres, stop_all
from writes_vs_postgres import INSERT_SCRIPT

FEATURES = [
    "CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num "
    "WINDOW SLIDING INTERVAL '1 hour'",
    "CREATE FEATURE card_count_1d AS SELECT cc_num, count(*) AS n FROM tx GROUP BY cc_num "
    "WINDOW SLIDING INTERVAL '1 day'",
    "CREATE FEATURE user_ips_30d AS SELECT user_id, count(DISTINCT ip) AS ips FROM tx GROUP BY user_id "
    "WINDOW SLIDING INTERVAL '30 days'",
]


def size_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total / 1e6


def insert_load(port, work, name, seconds):
    """Starts pgbench's single-row INSERTs with a per-transaction log; returns (thread, log prefix)."""
    script = os.path.join(work, f"insert_{name}.sql")
    with open(script, "w") as f:
        f.write(INSERT_SCRIPT.format(table="tx"))
    prefix = os.path.join(work, f"log_{name}")
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", "16", "-j", "2", "-T", str(seconds), "-f", script,
           "-l", "--log-prefix", prefix, "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "asofdb"]
    thread = threading.Thread(target=subprocess.run, args=(cmd,), kwargs={"check": True, "capture_output": True})
    thread.start()
    return thread, prefix


def latencies(prefix, start, end):
    """Latencies (ms) of the logged transactions that ended within [start, end) (epoch seconds)."""
    inside, before = [], []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6:
                    continue
                ended = int(parts[4]) + int(parts[5]) / 1e6
                ms = int(parts[2]) / 1000.0
                if start <= ended < end:
                    inside.append(ms)
                elif ended < start:
                    before.append(ms)
    return before, inside


def summary(values):
    if not values:
        return "none"
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"n={len(values)} p50={pick(0.5):.2f} p99={pick(0.99):.2f} max={values[-1]:.1f} ms"


def backup_under_load(name, port, work, seconds, backup):
    load, prefix = insert_load(port, work, name, seconds)
    time.sleep(seconds / 3)
    start = time.time()
    backup()
    end = time.time()
    load.join()
    before, inside = latencies(prefix, start, end)
    return end - start, before, inside


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--binary", help="the asofdb binary to measure (default: build target/release/asofdb)")
    args = ap.parse_args()
    csv = generated_transactions(args.rows, 50_000)
    work = tempfile.mkdtemp(prefix="asofdb-backup-bench-")
    asofdb, pg_stop = None, None
    try:
        asofdb, port = start_asofdb(work, args.binary)
        psql(port, TX_DDL + " WITH (event_time = 'ts')")
        for feature in FEATURES:
            psql(port, feature)
        psql(port, f"\\copy tx FROM '{csv}' WITH (FORMAT csv, HEADER true)")
        psql(port, "CHECKPOINT")
        ours_dir = os.path.join(work, "asofdb-backup")
        ours = backup_under_load("asofdb", port, work, args.seconds,
                                 lambda: psql(port, f"BACKUP TO '{ours_dir}'"))
        logged = [line for line in open(os.path.join(work, "asofdb.err")) if "backup written" in line]
        waited = float(logged[-1].split("writes_waited_secs=")[1].split()[0]) if logged else float("nan")
        restored = os.path.join(work, "asofdb-restored")
        binary = args.binary or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                             "target", "release", "asofdb")
        started = time.time()
        subprocess.run([binary, "restore", "--from", ours_dir, "--data-dir", restored], check=True,
                       capture_output=True)
        restore_secs = time.time() - started

        pg_port, pg_stop = start_postgres(work)
        psql(pg_port, TX_DDL)
        psql(pg_port, f"\\copy tx FROM '{csv}' WITH (FORMAT csv, HEADER true)")
        psql(pg_port, "CHECKPOINT")
        theirs_dir = os.path.join(work, "pg-backup")
        basebackup = os.path.join(postgres_bin(), "pg_basebackup")
        theirs = backup_under_load(
            "postgres", pg_port, work, args.seconds,
            lambda: subprocess.run([basebackup, "-h", "127.0.0.1", "-p", str(pg_port), "-U", "bench", "-D",
                                    theirs_dir, "-X", "stream", "-c", "fast"], check=True, capture_output=True))

        print(f"{args.rows} events; single-row INSERTs by 16 clients during the backup")
        for name, (secs, before, inside), path in [("asofdb BACKUP TO", ours, ours_dir),
                                                   ("pg_basebackup", theirs, theirs_dir)]:
            mb = size_mb(path)
            print(f"{name:17} {secs:6.2f} s  {mb:7.1f} MB  {mb / secs:6.1f} MB/s")
            print(f"{'':17} INSERT latency before: {summary(before)}")
            print(f"{'':17} INSERT latency during: {summary(inside)}")
        print(f"asofdb writes waited (logged writes_waited_secs; nan if not logged): {waited * 1000:.1f} ms")
        print(f"asofdb restore    {restore_secs:6.2f} s")
        print(f"ratio (pg_basebackup seconds / asofdb seconds): {theirs[0] / ours[0]:.2f}x")
    finally:
        stop_all(asofdb, pg_stop, work)


if __name__ == "__main__":
    main()
