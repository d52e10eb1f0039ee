#!/usr/bin/env python3
"""Writes into asofdb against the same writes into PostgreSQL 15, in one run (issue #24).

1. Single-row INSERT: pgbench `-M prepared -c 16 -j 2 -T <seconds>` runs
   `INSERT INTO tx VALUES (...)` (random id, card, user and amount as parameters; the event time
   is now()) against
   asofdb's `tx` without features, then against PostgreSQL's `tx` (a plain table, default
   durability: fsync and synchronous_commit on), then against asofdb's `tx5`, which has the
   five benchmark features (1h max, 1d count, 30d distinct ip, 1h avg by card and merchant,
   10-minute session count). Printed: tps, latency percentiles, ratios.
2. COPY: the generator's events (1M by default) are copied with psql's `\\copy` into a fresh
   asofdb table with the same five features (maintained as the rows arrive) and into a fresh
   PostgreSQL table;
   printed: events/s of each.

Both servers are started by this script on free loopback ports (PostgreSQL: Debian's, initdb
on a temporary directory, installed if missing).

Usage: python3 benches/writes_vs_postgres.py [--seconds 15] [--rows 1000000] [--rounds 1]
                                             [--binary target/release/asofdb]
"""

import argparse
import os
import subprocess
import tempfile
import time

from pgbench_vs_postgres import TX_DDL, generated_transactions, psql, start_asofdb, start_postgres, stop_all

FEATURES = [
    "CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx5 GROUP BY cc_num "
    "WINDOW SLIDING INTERVAL '1 hour'",
    "CREATE FEATURE card_count_1d AS SELECT cc_num, count(*) AS n FROM tx5 GROUP BY cc_num "
    "WINDOW SLIDING INTERVAL '1 day'",
    "CREATE FEATURE user_ips_30d AS SELECT user_id, count(DISTINCT ip) AS ips FROM tx5 GROUP BY user_id "
    "WINDOW SLIDING INTERVAL '30 days'",
    "CREATE FEATURE card_merchant_avg_1h AS SELECT cc_num, merchant, avg(amt) AS avg_amt FROM tx5 "
    "GROUP BY cc_num, merchant WINDOW SLIDING INTERVAL '1 hour'",
    "CREATE FEATURE card_session_10m AS SELECT cc_num, count(*) AS n FROM tx5 GROUP BY cc_num "
    "WINDOW SESSION GAP INTERVAL '10 minutes'",
]

# Values arrive as parameters, as an application sends them; the event time is the server's now().
INSERT_SCRIPT = """\\set id random(1, 1000000000)
\\set card random(1, 50000)
\\set usr random(1, 20000)
\\set amt random(1, 100000) / 100.0
INSERT INTO {table} VALUES (:id, :card, :usr, 'merchant_7', :amt, 'ok', '10.0.0.1', now());
"""


def pgbench_insert(port, work, table, seconds):
    script = os.path.join(work, f"insert_{table}.sql")
    with open(script, "w") as f:
        f.write(INSERT_SCRIPT.format(table=table))
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", "16", "-j", "2", "-T", str(seconds), "-f",
                          script, "-r", "-h", "127.0.0.1", "-p", str(port), "-U", "bench", "asofdb"],
                         check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    tps = float(next(line for line in lines if line.startswith("tps =")).split()[2])
    latency = float(next(line for line in lines if line.startswith("latency average")).split()[3])
    failed = next(line for line in lines if line.startswith("number of failed transactions"))
    return tps, latency, failed


def timed_copy(port, table, csv):
    start = time.perf_counter()
    psql(port, f"\\copy {table} FROM '{csv}' WITH (FORMAT csv, HEADER true)")
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the INSERT runs this many times")
    ap.add_argument("--binary", help="the asofdb binary to measure (default: build target/release/asofdb)")
    args = ap.parse_args()

    csv = generated_transactions(args.rows, 50_000)

    work = tempfile.mkdtemp(prefix="writes-vs-pg-")
    os.chmod(work, 0o755)
    asofdb = pg_stop = None
    try:
        asofdb, port = start_asofdb(work, args.binary)
        pg_port, pg_stop = start_postgres(work)
        psql(port, f"{TX_DDL} WITH (event_time = 'ts')")
        psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE tx5 ')} WITH (event_time = 'ts')")
        for feature in FEATURES:
            psql(port, feature)
        psql(pg_port, TX_DDL)

        print(f"single-row INSERT, pgbench -M prepared -c 16 -j 2 -T {args.seconds}", flush=True)
        for _ in range(args.rounds):
            plain, plain_lat, plain_failed = pgbench_insert(port, work, "tx", args.seconds)
            pg, pg_lat, pg_failed = pgbench_insert(pg_port, work, "tx", args.seconds)
            feat, feat_lat, feat_failed = pgbench_insert(port, work, "tx5", args.seconds)
            print(f"  asofdb, no features  {plain:9.0f} tps  {plain_lat:.3f} ms avg  ({plain_failed})")
            print(f"  asofdb, 5 features   {feat:9.0f} tps  {feat_lat:.3f} ms avg  ({feat_failed})")
            print(f"  postgres             {pg:9.0f} tps  {pg_lat:.3f} ms avg  ({pg_failed})")
            print(f"  ratio asofdb/postgres: {plain / pg:.2f}x without features, {feat / pg:.2f}x with 5", flush=True)

        # A fresh table with the same features: the INSERTs' rows (event time now) would make
        # every copied event a late one.
        psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE txc ')} WITH (event_time = 'ts')")
        for feature in FEATURES:
            psql(port, feature.replace("tx5", "txc").replace("CREATE FEATURE ", "CREATE FEATURE c_"))
        psql(pg_port, f"{TX_DDL.replace('TABLE tx ', 'TABLE txc ')}")
        ours = timed_copy(port, "txc", csv)
        theirs = timed_copy(pg_port, "txc", csv)
        print(f"COPY of {args.rows} events (psql \\copy, CSV)")
        print(f"  asofdb, into the table with 5 features  {ours:7.2f} s  {args.rows / ours:11,.0f} events/s")
        print(f"  postgres, plain table                   {theirs:7.2f} s  {args.rows / theirs:11,.0f} events/s")
        print(f"  ratio asofdb/postgres: {theirs / ours:.2f}x")
    finally:
        stop_all(asofdb, pg_stop, work)


if __name__ == "__main__":
    main()
