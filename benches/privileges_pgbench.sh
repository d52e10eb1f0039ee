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
export PGUSER=asofdb
source benches/common/point_read_server.sh
psql -q -v ON_ERROR_STOP=1 -c "CREATE ROLE model LOGIN" -c "GRANT SELECT ON FEATURE card_max_1h TO model"

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
