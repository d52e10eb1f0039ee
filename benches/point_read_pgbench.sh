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
work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The bench profile builds target/release/asofdb with the same dependency features as the
# benches, so no second DataFusion build is needed.
cargo bench --bench features --no-run >/dev/null 2>&1 || cargo bench --bench features --no-run
csv=target/bench-data/tx_1000000.csv
if [[ ! -f $csv ]]; then
    mkdir -p target/bench-data
    python3 ../shared/data/gen_transactions.py --rows 1000000 --cards 50000 --days 30 --seed 7 --transactions "$csv"
fi

target/release/asofdb --data-dir "$work/db" --listen 127.0.0.1:0 --checkpoint-secs 0 >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/out" 2>/dev/null && break
    sleep 0.1
done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/out")
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=bench PGDATABASE=asofdb
psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION,
                 status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
\copy tx FROM '$csv' WITH (FORMAT csv, HEADER true)
CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num
  WINDOW SLIDING INTERVAL '1 hour';
SQL

cat >"$work/read.sql" <<'SQL'
\set k random(1, 50000)
SELECT max_amt FROM card_max_1h WHERE cc_num = :k;
SQL
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
