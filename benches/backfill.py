#!/usr/bin/env python3
"""CREATE FEATURE's backfill over stored events, by feature shape (issue #24: 10M events of any
shape in <= 2 s on this machine's two cores).

The generator's events (10M by default, 60 days, 100K cards, seed 11: the training set's data of
benches/asof_vs_duckdb.py, cached in target/bench-data/) are loaded by one COPY into a table kept
hot (`hot_retention` 10 years) or, with `--cold`, moved to the Parquet tier first (CHECKPOINT
with a one-day retention). Then each feature below is created, timed, and dropped, `--rounds`
times. Printed per feature: seconds per round and events/s of the best round.

The server is started by this script on a free loopback port with its default settings.

Usage: python3 benches/backfill.py [--rows 10000000] [--rounds 2] [--cold]
                                   [--binary target/release/asofdb]
"""

import argparse
import os
import sys
import tempfile
import time

from asof_vs_duckdb import Asofdb, generated
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHAPES = [
    ("sliding 1d max by card", "SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num "
                               "WINDOW SLIDING INTERVAL '1 day'"),
    ("sliding 1h max by card", "SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num "
                               "WINDOW SLIDING INTERVAL '1 hour'"),
    ("sliding 30d distinct ip by user", "SELECT user_id, count(DISTINCT ip) AS ips FROM tx GROUP BY user_id "
                                        "WINDOW SLIDING INTERVAL '30 days'"),
    ("sliding 1d failed count by card", "SELECT cc_num, count(*) AS n FROM tx WHERE status = 'failed' "
                                        "GROUP BY cc_num WINDOW SLIDING INTERVAL '1 day'"),
    ("sliding 1h avg by card, merchant", "SELECT cc_num, merchant, avg(amt) AS avg_amt FROM tx "
                                         "GROUP BY cc_num, merchant WINDOW SLIDING INTERVAL '1 hour'"),
    ("tumbling 1h sum by card", "SELECT cc_num, sum(amt) AS s FROM tx GROUP BY cc_num "
                                "WINDOW TUMBLING INTERVAL '1 hour'"),
    ("session 10m count by card", "SELECT cc_num, count(*) AS n FROM tx GROUP BY cc_num "
                                  "WINDOW SESSION GAP INTERVAL '10 minutes'"),
    ("sliding 1d last_k, p90 by card", "SELECT cc_num, last_k(amt, 10) AS last10, approx_percentile(amt, 0.9) "
                                       "AS p90 FROM tx GROUP BY cc_num WINDOW SLIDING INTERVAL '1 day'"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="move the events to the Parquet tier first")
    parser.add_argument("--only", help="run only the shapes whose name contains this")
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "asofdb")
    args = parser.parse_args()
    if args.rounds < 1 or args.rows < 1:
        sys.exit("--rows and --rounds must be at least 1")
    tx, _ = generated(ROOT / "target" / "bench-data", "", args.rows, max(args.rows // 10, 1), [])
    with tempfile.TemporaryDirectory(prefix="asofdb-backfill-") as work:
        db = Asofdb(args.binary, Path(work) / "data")
        try:
            retention = "1 day" if args.cold else "3650 days"
            db.sql("CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, "
                   "amt DOUBLE PRECISION, status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) "
                   f"WITH (event_time = 'ts', hot_retention = '{retention}')")
            start = time.perf_counter()
            db.copy_in("tx", tx)
            if args.cold:
                db.sql("CHECKPOINT")
            print(f"loaded {args.rows} events in {time.perf_counter() - start:.1f} s "
                  "(rows by tier: " + db.sql("SELECT string_agg(tier || ' ' || row_count, ', ') FROM asofdb.storage "
                                             "WHERE table_name = 'tx'") + ")", flush=True)
            for i, (name, body) in enumerate(SHAPES):
                if args.only and args.only not in name:
                    continue
                rounds = []
                for _ in range(args.rounds):
                    rounds.append(db.timed(f"CREATE FEATURE f{i} AS {body}"))
                    db.sql(f"DROP FEATURE f{i}")
                best = min(rounds)
                print(f"{name:36} " + " ".join(f"{r:6.2f} s" for r in rounds)
                      + f"   best {args.rows / best / 1e6:5.2f}M events/s", flush=True)
            print(f"peak RSS {db.peak_rss_mib():.0f} MiB", flush=True)
        finally:
            db.stop()


if __name__ == "__main__":
    main()
