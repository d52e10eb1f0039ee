#!/usr/bin/env bash
# The cost of privilege checks on the prepared point-read fast path (issue #32): pgbench
# -M prepared -c 16 runs
#   SELECT max_amt FROM card_max_1h WHERE cc_num = :k      (k random among the 50K cards)
# against the release binary holding 1M generated events, alternately as the bootstrap
# superuser and as a role granted only SELECT on the feature (a non-owner, so every Execute
# checks the grant), and prints each run's tps and p99 and the ratio granted/superuser.
#
# Usage: benches/privileges_pgbench.sh [seconds per run, default 15] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
rounds=${2:-3}
work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

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
export PGHOST=127.0.0.1 PGPORT=$port PGDATABASE=asofdb
PGUSER=asofdb psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION,
                 status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
\copy tx FROM '$csv' WITH (FORMAT csv, HEADER true)
CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num
  WINDOW SLIDING INTERVAL '1 hour';
CREATE ROLE model LOGIN;
GRANT SELECT ON FEATURE card_max_1h TO model;
SQL

cat >"$work/read.sql" <<'SQL'
\set k random(1, 50000)
SELECT max_amt FROM card_max_1h WHERE cc_num = :k;
SQL

# One run as $1: prints "tps p99_us".
run() {
    rm -f "$work"/read.[0-9]*
    local tps
    tps=$(cd "$work" && PGUSER=$1 pgbench -n -M prepared -c 16 -j 2 -T "$seconds" -f read.sql -l --log-prefix=read \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    python3 - "$work" "$tps" <<'PY'
import glob, sys
lat = []
for path in glob.glob(f"{sys.argv[1]}/read.[0-9]*"):
    with open(path) as f:
        lat += [int(line.split()[2]) for line in f if line.strip()]
lat.sort()
print(sys.argv[2], lat[min(len(lat) - 1, int(0.99 * len(lat)))])
PY
}

for round in $(seq "$rounds"); do
    read -r su_tps su_p99 < <(run asofdb)
    read -r role_tps role_p99 < <(run model)
    python3 -c "
su, role = float('$su_tps'), float('$role_tps')
print(f'round $round: superuser {su:.0f} tps p99 $su_p99 us; granted role {role:.0f} tps p99 $role_p99 us; '
      f'tps ratio granted/superuser {role / su:.3f}, p99 ratio {$role_p99 / $su_p99:.3f}')"
done
