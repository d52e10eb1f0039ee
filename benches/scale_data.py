#!/usr/bin/env python3
"""Slices of generated events for the 100M-event run of benches/tiering.py.

../shared/data/gen_transactions.py holds every row of a run in memory (100M rows would need
~50 GB of Python objects), so 100M events are made as K slices of --rows events each, slice k
generated with seed 1000+k over --days/K days and shifted k * days/K later (tids shifted by
k * rows), so the slices together are one 100M-event stream over --days days, in arrival order
with late rows, ties and power-law keys as the generator makes them. Slices are cached under
target/bench-data/slices-<total>/ (not in the repo); existing ones are kept.

The generator makes about 20K rows/s on this machine (100M: ~90 minutes), so with --unique U
only slices 0..U-1 are generated; slice k >= U is slice k mod U shifted again by
(k - k mod U) * days/K and its tids by (k - k mod U) * rows: the same events' pattern, later.

Usage: python3 benches/scale_data.py [--slices 100] [--unique 20] [--rows 1000000] [--days 60] [--jobs 1]
"""
import argparse
import datetime as dt
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT.parent / "shared" / "data" / "gen_transactions.py"


def slice_dir(slices: int, rows: int) -> Path:
    return ROOT / "target" / "bench-data" / f"slices-{slices * rows}"


def derive_slice(k: int, a) -> Path:
    out = slice_dir(a.slices, a.rows) / f"{k:04d}.csv"
    if out.exists():
        return out
    base = k % a.unique
    source = make_slice(base, a)
    steps = k - base
    shift = dt.timedelta(days=steps * a.days / a.slices)
    part = out.with_suffix(".part")
    with open(source) as src, open(part, "w") as f:
        for line in src:
            head, ts = line.rstrip("\n").rsplit(",", 1)
            tid, rest = head.split(",", 1)
            f.write(f"{int(tid) + steps * a.rows},{rest},{dt.datetime.fromisoformat(ts) + shift}\n")
    part.rename(out)
    return out


def make_slice(k: int, a) -> Path:
    out = slice_dir(a.slices, a.rows) / f"{k:04d}.csv"
    if out.exists():
        return out
    width = a.days / a.slices
    shift = dt.timedelta(days=k * width)
    gen = subprocess.Popen([sys.executable, str(GENERATOR), "--rows", str(a.rows), "--cards", str(a.cards),
                            "--days", str(width), "--seed", str(1000 + k), "--transactions", "-"],
                           stdout=subprocess.PIPE, text=True)
    part = out.with_suffix(".part")
    with open(part, "w") as f:
        next(gen.stdout)  # header
        for line in gen.stdout:
            head, ts = line.rstrip("\n").rsplit(",", 1)
            tid, rest = head.split(",", 1)
            f.write(f"{int(tid) + k * a.rows},{rest},{dt.datetime.fromisoformat(ts) + shift}\n")
    if gen.wait() != 0:
        sys.exit(f"generator failed on slice {k}")
    part.rename(out)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--cards", type=int, default=1_000_000)
    p.add_argument("--days", type=float, default=60)
    p.add_argument("--unique", type=int, default=0, help="generate only this many slices (0: all)")
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args()
    a.unique = a.unique or a.slices
    slice_dir(a.slices, a.rows).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        for path in pool.map(lambda k: make_slice(k, a), range(a.unique)):
            print(path, flush=True)
    for k in range(a.unique, a.slices):
        print(derive_slice(k, a), flush=True)


if __name__ == "__main__":
    main()
