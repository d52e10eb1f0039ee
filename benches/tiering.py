#!/usr/bin/env python3
"""Tiered storage figures (issue #5): ingest with three features while rows move to the cold
tier in the background, then CHECKPOINT, bytes per event in each tier, and scan throughput of
the hot and the cold tier. Runs the release binary on a temporary data directory.

Usage:
  cargo bench --bench features --no-run      # builds target/release/asofdb
  python3 benches/tiering.py [--events 10000000]
  python3 benches/scale_data.py && python3 benches/tiering.py --slices 100   # 100M events

Events come from ../shared/data/gen_transactions.py streamed into one COPY (not stored), or from
target/bench-data/asof_tx_<events>.csv when that file exists (made by benches/asof_vs_duckdb.py).
With --slices K, they come from the K slices of benches/scale_data.py, one COPY statement each
(a stream of batches, as an ingestion pipeline sends them), and the hot tier's size is sampled
as they go in.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asof_vs_duckdb import FEATURES, GENERATOR, ROOT  # noqa: E402


class Server:
    def __init__(self, binary: Path, data_dir: Path, extra: list):
        # The server's log (info) goes to a file: its "tiered" lines give the background moves'
        # throughput, apart from CHECKPOINT's snapshots.
        self.log = open(data_dir / "server.log", "w")
        self.proc = subprocess.Popen([str(binary), "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={"RUST_LOG": "info", "PATH": "/usr/bin:/bin",
                                          **{k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "MIMALLOC_"))}})
        self.log_path = data_dir / "server.log"
        line = self.proc.stdout.readline()
        while line and not line.startswith("asofdb listening on "):  # e.g. a profiler's banner
            line = self.proc.stdout.readline()
        host, port = line.strip().removeprefix("asofdb listening on ").rsplit(":", 1)
        self.conn = f"host={host} port={port} user=bench dbname=asofdb"
        self.peak_rss = 0
        self.peak_smaps = ""
        self.samples = []
        self.trace = []  # (unix time, RSS MiB) per sample, for --rss-trace
        self.stdin = None
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while self.proc.poll() is None:
            try:
                for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) // 1024
                        if rss > self.peak_rss:
                            self.peak_rss = rss
                            self.peak_smaps = Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text()
                        self.samples.append(rss)
                        self.trace.append((time.time(), rss))
            except OSError:
                return
            time.sleep(0.2)

    def sql(self, sql: str, stdin=None) -> str:
        out = subprocess.run(["psql", self.conn, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
                             capture_output=True, text=True, stdin=stdin)
        if out.returncode != 0:
            sys.exit(f"asofdb failed: {out.stderr.strip()}\n  in: {sql[:200]}")
        return out.stdout.strip()

    def timed(self, sql: str) -> tuple[float, str]:
        start = time.perf_counter()
        out = self.sql(sql)
        return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "asofdb")
    parser.add_argument("--slices", type=int, default=0, help="ingest the slices of benches/scale_data.py")
    parser.add_argument("--slice-rows", type=int, default=1_000_000)
    parser.add_argument("--server-arg", action="append", default=[], help="an extra server flag (repeatable)")
    parser.add_argument("--features", type=int, default=len(FEATURES), help="create only the first N features")
    parser.add_argument("--rss-trace", type=Path, help="write each RSS sample (unix time, MiB) here, "
                        "and the server's log next to it (.log), to line the peaks up with what ran")
    parser.add_argument("--stop-after", type=int, default=0, help="ingest only this many slices (a quick look)")
    args = parser.parse_args()
    if args.slices:
        args.events = args.slices * args.slice_rows
    with tempfile.TemporaryDirectory() as tmp:
        db = Server(args.binary, Path(tmp), args.server_arg)
        try:
            run(db, args)
        finally:
            if db.proc.poll() is None:
                db.proc.kill()
                db.proc.wait()


def run(db: "Server", args):
    db.sql("CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, "
           "status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts', hot_retention = '1 day')")
    for name, body in FEATURES[:args.features]:
        db.sql(f"CREATE FEATURE {name} AS {body}")
    cached = ROOT / "target" / "bench-data" / f"asof_tx_{args.events}.csv"
    start = time.perf_counter()
    if args.slices:
        from scale_data import slice_dir
        folder = slice_dir(args.slices, args.slice_rows)
        hot_max = 0
        for k in range(args.stop_after or args.slices):
            path = folder / f"{k:04d}.csv"
            if not path.exists():
                sys.exit(f"missing {path}: run benches/scale_data.py --slices {args.slices} first")
            db.sql(f"\\copy tx FROM '{path}' WITH (FORMAT csv)")
            if k % 10 == 9 or k == args.slices - 1:
                hot = int(db.sql("SELECT row_count FROM asofdb.storage WHERE table_name = 'tx' AND tier = 'hot'"))
                hot_max = max(hot_max, hot)
                done = (k + 1) * args.slice_rows
                took = time.perf_counter() - start
                print(f"  {done:>11} events in {took:7.1f} s ({done / took / 1000:.0f}K events/s), "
                      f"hot tier {hot} rows, RSS {db.samples[-1] if db.samples else 0} MiB, "
                      f"peak {db.peak_rss} MiB", flush=True)
        print(f"hot tier at most {hot_max} rows at the samples", flush=True)
    elif cached.exists():
        db.sql(f"\\copy tx FROM '{cached}' WITH (FORMAT csv, HEADER true)")
    else:
        gen = subprocess.Popen([sys.executable, str(GENERATOR), "--rows", str(args.events), "--cards",
                                str(max(args.events // 100, 100)), "--days", "60", "--seed", "11",
                                "--transactions", "-"], stdout=subprocess.PIPE)
        db.sql("\\copy tx FROM STDIN WITH (FORMAT csv, HEADER true)", stdin=gen.stdout)
        gen.wait()
    ingest = time.perf_counter() - start
    print(f"ingest: {args.events} events with 3 features in {ingest:.1f} s "
          f"({args.events / ingest / 1000:.0f}K events/s); peak RSS so far {db.peak_rss} MiB", flush=True)
    took, _ = db.timed("CHECKPOINT")
    storage = db.sql("SELECT tier, row_count, file_count, bytes FROM asofdb.storage WHERE table_name = 'tx' ORDER BY tier")
    print(f"CHECKPOINT (snapshots + remaining moves) {took:.1f} s; peak RSS so far {db.peak_rss} MiB", flush=True)
    for line in storage.splitlines():
        tier, rows, files, size = line.split("|")
        per = int(size) / max(int(rows), 1)
        print(f"  {tier:4}: {int(rows):>10} rows  {int(files):>6} files/values  {int(size) / 2**20:8.1f} MiB  "
              f"{per:6.1f} bytes/event", flush=True)
    watermark = db.sql("SELECT max(ts) FROM tx")
    for tier, cond in [("hot", ">="), ("cold", "<")]:
        where = f"ts {cond} TIMESTAMP '{watermark}' - INTERVAL '1 day'"
        took, out = db.timed(f"SELECT count(*), sum(amt) FROM tx WHERE {where}")
        rows = int(out.split("|")[0])
        print(f"scan {tier:4}: {rows} rows in {took:.2f} s ({rows / took / 1e6:.1f}M rows/s); "
              f"peak RSS so far {db.peak_rss} MiB", flush=True)
    took, out = db.timed("SELECT count(*) FROM tx")
    print(f"scan all: {out} rows in {took:.2f} s", flush=True)
    features = db.sql("SELECT name, keys, events, state_bytes FROM asofdb.feature_state ORDER BY name")
    print("feature state:", "; ".join(f"{n} {int(b) / 2**20:.0f} MiB ({int(k) / 1e6:.2f}M keys, "
                                      f"{int(e) / 1e6:.2f}M events)"
                                      for n, k, e, b in (l.split("|") for l in features.splitlines())), flush=True)
    # What the peak was made of: anonymous (heap) memory, of it transparent huge pages, and files.
    kinds = {f.split(":")[0]: int(f.split()[1]) // 1024 for f in db.peak_smaps.splitlines()[1:] if f.endswith(" kB")}
    print(f"peak RSS {db.peak_rss} MiB (anonymous {kinds.get('Anonymous', 0)} MiB, of which huge pages "
          f"{kinds.get('AnonHugePages', 0)} MiB; files {kinds.get('Pss_File', 0)} MiB)", flush=True)
    moved = secs = 0.0
    for line in db.log_path.read_text().splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if " tiered" in line:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if "rows" in fields and "secs" in fields:
                moved += int(fields["rows"])
                secs += float(fields["secs"])
    if secs:
        print(f"tiering (background and CHECKPOINT moves, compaction, GC): {int(moved)} rows in {secs:.1f} s "
              f"({moved / secs / 1e6:.2f}M rows/s)", flush=True)
    db.proc.terminate()
    db.proc.wait(timeout=300)
    if args.rss_trace:
        args.rss_trace.write_text("".join(f"{t:.1f} {rss}\n" for t, rss in db.trace))
        args.rss_trace.with_suffix(".log").write_text(db.log_path.read_text())


if __name__ == "__main__":
    main()
