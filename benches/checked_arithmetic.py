#!/usr/bin/env python3
"""Does checked arithmetic (issue #33) slow scans? Runs
`SELECT sum(amt * 100), count(*) FROM tx WHERE amt > 1` over 10M stored rows on two asofdb
binaries, one built before the checks and one after, in the same run, and prints the ratio.

Build the two binaries first, e.g. (the second build is incremental):
  cargo build --release && cp target/release/asofdb /tmp/asofdb-after
  git worktree add /tmp/before <commit before the checks>
  (cd /tmp/before && CARGO_TARGET_DIR=/work/main/target cargo build --release) && cp target/release/asofdb /tmp/asofdb-before

Usage: python3 benches/checked_arithmetic.py /tmp/asofdb-before /tmp/asofdb-after [--copies 10] [--runs 7]
Data: 1M rows of ../shared/data/gen_transactions.py (seed 7), cached in target/bench-data/,
COPYed --copies times.
"""
import argparse
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT.parent / "shared" / "data" / "gen_transactions.py"
QUERY = "SELECT sum(amt * 100), count(*) FROM tx WHERE amt > 1"


def data_file() -> Path:
    path = ROOT / "target" / "bench-data" / "tx-1m-seed7.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", str(GENERATOR), "--rows", "1000000", "--cards", "50000", "--days", "30",
                        "--seed", "7", "--transactions", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(binary: str, csv: Path, copies: int, runs: int) -> list[float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        server = subprocess.Popen([binary, "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
                                   "--tier-secs", "0", "--checkpoint-secs", "0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    conn = psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=bench", autocommit=True)
                    break
                except psycopg.OperationalError:
                    time.sleep(0.1)
            conn.execute("CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, "
                         "amt DOUBLE PRECISION, status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')")
            body = csv.read_bytes().split(b"\n", 1)[1]
            for _ in range(copies):
                with conn.cursor().copy("COPY tx FROM STDIN (FORMAT csv)") as copy:
                    copy.write(body)
            conn.execute(QUERY).fetchone()  # warm
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                conn.execute(QUERY).fetchone()
                times.append(time.perf_counter() - started)
            return times
        finally:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    csv = data_file()
    before = measure(args.before, csv, args.copies, args.runs)
    after = measure(args.after, csv, args.copies, args.runs)
    rows = args.copies * 1_000_000
    for name, times in (("before", before), ("after", after)):
        median = statistics.median(times)
        print(f"{name:6}: median {median * 1000:.0f} ms ({rows / median / 1e6:.1f}M rows/s), "
              f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    print(f"after/before (median): {statistics.median(after) / statistics.median(before):.3f}")


if __name__ == "__main__":
    main()
