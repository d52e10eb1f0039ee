#!/usr/bin/env bash
# Point-read latency of a feature over the wire: pgbench -M prepared -c 16 runs
#   SELECT max_amt FROM card_max_1h WHERE cc_num = :k      (k random among the 50K cards)
# against the release binary holding 1M generated events, and prints p50/p99/p99.9 latency
# from pgbench's per-transaction log. Figures go in docs/benchmarks.md.
#
# Usage: benches/point_read_pgbench.sh [seconds, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
export PGUSER=bench
source benches/common/point_read_server.sh
(cd "$work" && pgbench -n -M prepared -c 16 -j 2 -T "$seconds" -f read.sql -l --log-prefix=read) | tee "$work/pgbench.txt"

python3 - "$work" <<'PY'
import glob, sys
lat = []
for path in glob.glob(f"{sys.argv[1]}/read.[0-9]*"):
    with open(path) as f:
        lat += [int(line.split()[2]) for line in f if line.strip()]
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"point read over pgwire: {len(lat)} transactions, p50 {pick(0.5)} us, p99 {pick(0.99)} us, "
      f"p99.9 {pick(0.999)} us, max {lat[-1]} us")
PY
