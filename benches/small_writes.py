#!/usr/bin/env python3
"""Events written one row per statement against the same events loaded by one COPY (issue #34).

1. The generator's events (1M by default, 30 days) go into two asofdb tables, both kept wholly
   in the hot tier (hot_retention 10 years): `tx_copy` by one COPY, `tx_rows` by 16 psql
   sessions, each sending its share as single-row INSERT statements (or `--rows-per-insert`
   rows per statement: small multi-row INSERTs). Then CHECKPOINT (which
   merges small hot values, like the background pass every 10 s).
2. Per table: hot-tier bytes per event and stored values (asofdb.storage), `SELECT count(*),
   sum(amt)`, the backfill of a 1-day sliding max by card (CREATE FEATURE), a training set of
   a 100K-row spine ASOF-joined to that feature, and a spine ASOF-joined to the table itself.
   Printed: each figure for both tables and their ratio (rows / copy; goal <= 1.2x, bytes
   <= 2x). A third table, `tx_copy_same_order`, gets tx_rows' rows by one COPY in the order
   the INSERTs arrived: 16 sessions interleave, so features sort more late rows into place,
   and this ratio separates what the storage costs from what the order costs.
3. Throughput as the table grows: pgbench `-M prepared -c 16 -j 2` single-row INSERTs into an
   empty table for `--seconds`, then until it holds `--grow-rows` rows (5M by default), then
   `--seconds` again; printed: both tps and their ratio (goal: equal within noise).

The server is started by this script on a free loopback port with its default settings.

Usage: python3 benches/small_writes.py [--rows 1000000] [--spine 100000] [--grow-rows 5000000]
                                       [--rows-per-insert 1] [--seconds 10] [--rounds 3]
                                       [--binary target/release/asofdb]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from pgbench_vs_postgres import GENERATOR, ROOT, psql, start_asofdb, stop_all
from writes_vs_postgres import INSERT_SCRIPT, pgbench_insert

TABLE_DDL = ("CREATE TABLE {t} (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, "
             "status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts', hot_retention = '3650 days')")
SPINE_DDL = ("CREATE TABLE spine (tid BIGINT, inference_ts TIMESTAMP NOT NULL, cc_num BIGINT, user_id BIGINT, "
             "is_fraud BIGINT) WITH (event_time = 'inference_ts', hot_retention = '3650 days')")
SESSIONS = 16


def data(rows, spine_rows):
    """The generator's events and spine (seed 7, 30 days), made once and kept in target/bench-data/."""
    data_dir = os.path.join(ROOT, "target", "bench-data")
    os.makedirs(data_dir, exist_ok=True)
    tx = os.path.join(data_dir, f"small_writes_tx_{rows}.csv")
    spine = os.path.join(data_dir, f"small_writes_spine_{rows}_{spine_rows}.csv")
    if not (os.path.exists(tx) and os.path.exists(spine)):
        subprocess.run([sys.executable, GENERATOR, "--rows", str(rows), "--cards", str(max(rows // 100, 100)),
                        "--days", "30", "--seed", "7", "--transactions", tx, "--spine", spine,
                        "--spine-rows", str(spine_rows)], check=True)
    return tx, spine


def sql_literal(value, column):
    if value == "":
        return "NULL"
    if column in ("merchant", "status", "ip", "ts"):
        return "'" + value.replace("'", "''") + "'"
    return value


def insert_files(work, csv, rows_per_insert):
    """The events as INSERTs of `rows_per_insert` rows, dealt round-robin to one file per session
    (statement by statement, so each session's rows keep the file's order)."""
    files = [open(os.path.join(work, f"rows_{i}.sql"), "w") for i in range(SESSIONS)]
    with open(csv) as f:
        header = f.readline().strip().split(",")
        statement, n = [], 0

        def flush():
            nonlocal statement, n
            if statement:
                files[n % SESSIONS].write(f"INSERT INTO tx_rows ({', '.join(header)}) VALUES {', '.join(statement)};\n")
                statement, n = [], n + 1

        for line in f:
            values = ", ".join(sql_literal(v, c) for v, c in zip(line.rstrip("\n").split(","), header))
            statement.append(f"({values})")
            if len(statement) == rows_per_insert:
                flush()
        flush()
    for f in files:
        f.close()
    return [f.name for f in files]


def query(port, sql):
    """psql's unaligned output of `sql`."""
    return subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U",
                           "bench", "-d", "asofdb", "-c", sql], check=True, capture_output=True, text=True).stdout


def timed(port, sql, rounds=1):
    best = None
    for _ in range(rounds):
        start = time.perf_counter()
        query(port, sql)
        took = time.perf_counter() - start
        best = took if best is None else min(best, took)
    return best


def storage(port, table):
    out = query(port, f"SELECT row_count, file_count, bytes FROM asofdb.storage "
                     f"WHERE table_name = '{table}' AND tier = 'hot'")
    rows, values, size = (int(x) for x in out.strip().split("|"))
    return rows, values, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--spine", type=int, default=100_000)
    ap.add_argument("--grow-rows", type=int, default=5_000_000)
    ap.add_argument("--rows-per-insert", type=int, default=1, help="rows of each INSERT of tx_rows (default 1)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="best of this many runs of each query")
    ap.add_argument("--binary", help="the asofdb binary to measure (default: build target/release/asofdb)")
    args = ap.parse_args()
    if args.rows_per_insert < 1:
        ap.error("--rows-per-insert must be at least 1")

    tx, spine = data(args.rows, args.spine)
    work = tempfile.mkdtemp(prefix="small_writes_")
    asofdb = None
    try:
        asofdb, port = start_asofdb(work, args.binary)
        for t in ("tx_copy", "tx_rows"):
            psql(port, TABLE_DDL.format(t=t))
        psql(port, SPINE_DDL)
        psql(port, f"\\copy spine FROM '{spine}' WITH (FORMAT csv, HEADER true)")

        start = time.perf_counter()
        psql(port, f"\\copy tx_copy FROM '{tx}' WITH (FORMAT csv, HEADER true)")
        copy_secs = time.perf_counter() - start
        files = insert_files(work, tx, args.rows_per_insert)
        start = time.perf_counter()
        sessions = [subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
                                      "-U", "bench", "-d", "asofdb", "-f", f], stdout=subprocess.DEVNULL)
                    for f in files]
        if any(s.wait() != 0 for s in sessions):
            raise SystemExit("a session's INSERTs failed")
        insert_secs = time.perf_counter() - start
        before = storage(port, "tx_rows")
        start = time.perf_counter()
        psql(port, "CHECKPOINT")
        checkpoint_secs = time.perf_counter() - start

        print(f"{args.rows} events: COPY {copy_secs:.1f} s ({args.rows / copy_secs:,.0f}/s); "
              f"{args.rows_per_insert}-row INSERTs from {SESSIONS} sessions {insert_secs:.1f} s ({args.rows / insert_secs:,.0f}/s); "
              f"before CHECKPOINT tx_rows had {before[1]:,} hot values, {before[2] / before[0]:.0f} bytes/event; "
              f"CHECKPOINT (merges) {checkpoint_secs:.1f} s")
        # The same rows in the order the sessions' INSERTs arrived (a scan's order), by one COPY:
        # what the storage costs, apart from the order (features sort late rows into place).
        same_order = os.path.join(work, "same_order.csv")
        psql(port, f"\\copy (SELECT * FROM tx_rows) TO '{same_order}' WITH (FORMAT csv, HEADER true)")
        psql(port, TABLE_DDL.format(t="tx_copy_same_order"))
        psql(port, f"\\copy tx_copy_same_order FROM '{same_order}' WITH (FORMAT csv, HEADER true)")
        figures = {}
        for t in ("tx_copy", "tx_copy_same_order", "tx_rows"):
            rows, values, size = storage(port, t)
            f = figures[t] = {"rows": rows, "values": values, "bytes/event": size / rows}
            f["count, sum"] = timed(port, f"SELECT count(*), sum(amt) FROM {t}", args.rounds)
            f["backfill 1d max"] = timed(port, f"CREATE FEATURE max_1d_{t} AS SELECT cc_num, max(amt) AS max_amt "
                                               f"FROM {t} GROUP BY cc_num WINDOW SLIDING INTERVAL '1 day'")
            f["training set"] = timed(port, f"SELECT count(*), sum(a.max_amt) FROM spine s ASOF LEFT JOIN max_1d_{t} a "
                                            f"ON s.cc_num = a.cc_num AND s.inference_ts > a.ts", args.rounds)
            f["ASOF on table"] = timed(port, f"SELECT count(*), sum(e.amt) FROM spine s ASOF LEFT JOIN {t} e "
                                             f"ON s.cc_num = e.cc_num AND s.inference_ts >= e.ts", args.rounds)
        print(f"\n{'figure':<18} {'COPY':>12} {'COPY, order':>12} {'row by row':>12} {'ratio':>7} {'ratio':>7}")
        print(f"{'':<18} {'':>12} {'as inserted':>12} {'':>12} {'to COPY':>7} {'same order':>7}")
        for name in ("values", "bytes/event", "count, sum", "backfill 1d max", "training set", "ASOF on table"):
            copy, same, rows = (figures[t][name] for t in ("tx_copy", "tx_copy_same_order", "tx_rows"))
            unit = "" if name in ("values", "bytes/event") else " s"
            fmt = (lambda v: f"{v:,.0f}{unit}") if unit == "" else (lambda v: f"{v:.3f}{unit}")
            print(f"{name:<18} {fmt(copy):>12} {fmt(same):>12} {fmt(rows):>12} {rows / copy:>6.2f}x {rows / same:>6.2f}x")

        # Throughput as the table grows, in a table of its own.
        psql(port, TABLE_DDL.format(t="grow").replace(", hot_retention = '3650 days'", ""))
        small_tps, small_lat, _ = pgbench_insert(port, work, "grow", args.seconds)
        small_rows = int(query(port, "SELECT count(*) FROM grow").strip())
        script = os.path.join(work, "grow.sql")
        with open(script, "w") as f:
            f.write(INSERT_SCRIPT.format(table="grow"))
        per_client = max(0, (args.grow_rows - small_rows) // 16)
        start = time.perf_counter()
        if per_client > 0:
            subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", "16", "-j", "2", "-t", str(per_client), "-f",
                            script, "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "asofdb"], check=True,
                           stdout=subprocess.DEVNULL)
        grow_secs = max(time.perf_counter() - start, 1e-9)
        big_rows = int(query(port, "SELECT count(*) FROM grow").strip())
        big_tps, big_lat, _ = pgbench_insert(port, work, "grow", args.seconds)
        rows, values, size = storage(port, "grow")
        psql(port, "CHECKPOINT")
        rows_after, values_after, size_after = storage(port, "grow")
        print(f"\nsingle-row INSERT (pgbench -M prepared -c 16 -j 2 -T {args.seconds}):")
        print(f"  from 0 rows:              {small_tps:,.0f} tps ({small_lat:.2f} ms), table then {small_rows:,} rows")
        if per_client > 0:
            print(f"  growing to {big_rows:,} rows: {(big_rows - small_rows) / grow_secs:,.0f} rows/s")
        print(f"  at {big_rows:,} rows:       {big_tps:,.0f} tps ({big_lat:.2f} ms); ratio {big_tps / small_tps:.2f}x")
        print(f"  hot tier then: {rows:,} rows in {values:,} values, {size / max(rows, 1):.0f} bytes/event; after "
              f"CHECKPOINT {values_after:,} values, {size_after / max(rows_after, 1):.0f} bytes/event; "
              f"data directory {du(os.path.join(work, 'asofdb')) / 1e6:,.0f} MB")
    finally:
        stop_all(asofdb, None, work)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


if __name__ == "__main__":
    main()
