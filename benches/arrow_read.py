#!/usr/bin/env python3
"""A training set read into Arrow: the ADBC driver (binary COPY TO underneath) against psycopg
(text rows, then an Arrow table), from asofdb and from PostgreSQL holding the same rows.

asofdb gets the generator's events (1M by default) with the feature `card_max_1h` (max amt
per card over a sliding hour), and a spine of as many rows. The training set is the spine
`ASOF LEFT JOIN card_max_1h`; asofdb also keeps it as a table `training` (INSERT ... SELECT),
which is exported with COPY and loaded into PostgreSQL 15 (Debian, started by this script on
a temp dir and a free loopback port, default settings). Each read runs --rounds times, the
client and the servers alternating; the best round counts. Printed: rows/s of each read and
the ratios the issue asks for (asofdb binary vs its text path; asofdb binary vs PostgreSQL's
binary).

Usage: python3 benches/arrow_read.py [--rows 1000000] [--rounds 3] [--binary target/release/asofdb]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgbench_vs_postgres import GENERATOR, ROOT, TX_DDL, psql, run, start_asofdb, start_postgres, stop_all  # noqa: E402

SPINE_DDL = "CREATE TABLE spine (tid BIGINT, inference_ts TIMESTAMP NOT NULL, cc_num BIGINT, user_id BIGINT, is_fraud BIGINT)"
TRAINING_DDL = ("CREATE TABLE training (tid BIGINT, inference_ts TIMESTAMP, cc_num BIGINT, is_fraud BIGINT, "
                "max_amt DOUBLE PRECISION)")
TRAINING_QUERY = ("SELECT s.tid, s.inference_ts, s.cc_num, s.is_fraud, f.max_amt FROM spine s "
                  "ASOF LEFT JOIN card_max_1h f ON s.cc_num = f.cc_num AND s.inference_ts >= f.ts")


def read_adbc(port, query):
    import adbc_driver_postgresql.dbapi as adbc
    with adbc.connect(f"postgresql://bench@127.0.0.1:{port}/asofdb") as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetch_arrow_table().num_rows


def read_psycopg(port, query):
    import psycopg
    import pyarrow as pa
    with psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=asofdb") as conn:
        cur = conn.execute(query)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
        table = pa.table(list(zip(*rows)) if rows else [[] for _ in names], names=names)
        return table.num_rows


def timed(read, port, query):
    start = time.perf_counter()
    rows = read(port, query)
    return rows, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cards", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--binary", help="the asofdb binary to measure (default: build target/release/asofdb)")
    args = ap.parse_args()

    data_dir = os.path.join(ROOT, "target", "bench-data")
    os.makedirs(data_dir, exist_ok=True)
    tx = os.path.join(data_dir, f"arrow_tx_{args.rows}.csv")
    spine = os.path.join(data_dir, f"arrow_spine_{args.rows}.csv")
    if not (os.path.exists(tx) and os.path.exists(spine)):
        run([sys.executable, GENERATOR, "--rows", str(args.rows), "--cards", str(args.cards), "--days", "30",
             "--seed", "7", "--transactions", tx, "--spine", spine, "--spine-rows", str(args.rows)])

    work = tempfile.mkdtemp(prefix="arrow-read-")
    os.chmod(work, 0o755)
    asofdb = pg_stop = None
    try:
        asofdb, port = start_asofdb(work, args.binary)
        psql(port, f"{TX_DDL} WITH (event_time = 'ts')")
        psql(port, f"\\copy tx FROM '{tx}' WITH (FORMAT csv, HEADER true)")
        psql(port, "CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num "
                   "WINDOW SLIDING INTERVAL '1 hour'")
        psql(port, f"{SPINE_DDL} WITH (event_time = 'inference_ts')")
        psql(port, f"\\copy spine FROM '{spine}' WITH (FORMAT csv, HEADER true)")
        psql(port, TRAINING_DDL)
        psql(port, f"INSERT INTO training {TRAINING_QUERY}")
        psql(port, "CHECKPOINT")
        exported = os.path.join(work, "training.csv")
        psql(port, f"\\copy training TO '{exported}' WITH (FORMAT csv)")
        os.chmod(exported, 0o644)

        pg_port, pg_stop = start_postgres(work)
        psql(pg_port, TRAINING_DDL)
        psql(pg_port, f"\\copy training FROM '{exported}' WITH (FORMAT csv)")
        psql(pg_port, "VACUUM ANALYZE training")

        reads = [
            ("asofdb ASOF query", port, TRAINING_QUERY),
            ("asofdb table", port, "SELECT * FROM training"),
            ("postgres table", pg_port, "SELECT * FROM training"),
        ]
        best = {}
        for _ in range(args.rounds):
            for name, p, query in reads:
                for client, read in (("adbc binary", read_adbc), ("psycopg text", read_psycopg)):
                    rows, seconds = timed(read, p, query)
                    key = (name, client)
                    if key not in best or seconds < best[key][1]:
                        best[key] = (rows, seconds)
        print(f"{args.rows} events, {args.rows} spine rows; best of {args.rounds} rounds")
        for (name, client), (rows, seconds) in best.items():
            print(f"  {name:18} {client:13} {rows:9d} rows  {seconds:7.3f} s  {rows / seconds:12,.0f} rows/s")
        rate = {k: v[0] / v[1] for k, v in best.items()}
        for name in ("asofdb ASOF query", "asofdb table"):
            print(f"  {name}: binary/text {rate[(name, 'adbc binary')] / rate[(name, 'psycopg text')]:.2f}x, "
                  f"binary vs postgres binary {rate[(name, 'adbc binary')] / rate[('postgres table', 'adbc binary')]:.2f}x")
        print(f"  postgres table: binary/text "
              f"{rate[('postgres table', 'adbc binary')] / rate[('postgres table', 'psycopg text')]:.2f}x")
    finally:
        stop_all(asofdb, pg_stop, work)


if __name__ == "__main__":
    main()
