#!/usr/bin/env bash
# Erasing one user's events from a 10M-event table with 5 features (issue #32): the release
# binary holds N generated events (default 10M; 29 of their 30 days moved to the cold tier by
# CHECKPOINT) and five features, and pgbench -M prepared -c 16 reads one of them
#   SELECT max_amt FROM card_max_1h WHERE cc_num = :k      (k random among the 50K cards)
# first quietly, then while `DELETE FROM tx WHERE user_id = u` runs for several users one
# after another. Prints each DELETE's time to CommandComplete and rows, and the point reads'
# p99 during the DELETEs (reads completed while one ran) against the quiet p99; then the same
# for the CHECKPOINT after them, which writes the files listing erased rows again without them.
#
# The users erased are those at the median of events per user (an erasure request names one
# person); with `top` as the third argument, those with the most events instead (the
# generator's keys follow a power law: its busiest "user" has 14% of the events).
#
# With PERF_OUT=file set, `perf record -g` samples the server during the first DELETE.
#
# Usage: benches/erasure_pgbench.sh [events, default 10000000] [users to erase, default 5] [median|top]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
users=${2:-5}
pick=${3:-median}
source benches/common/release_server.sh
start_server --checkpoint-secs 0 --tier-secs 0
export PGUSER=asofdb
echo "loading $rows events and 5 features..."
load_transactions "$rows"
psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num
  WINDOW SLIDING INTERVAL '1 hour';
CREATE FEATURE card_1d AS SELECT cc_num, count(*) AS n, sum(amt) AS total FROM tx GROUP BY cc_num
  WINDOW SLIDING INTERVAL '1 day';
CREATE FEATURE user_7d AS SELECT user_id, count(*) AS n, avg(amt) AS mean FROM tx GROUP BY user_id
  WINDOW SLIDING INTERVAL '7 days';
CREATE FEATURE user_life AS SELECT user_id, count(*) AS n, max(amt) AS mx FROM tx GROUP BY user_id
  WINDOW LIFETIME;
CREATE FEATURE merchant_1h AS SELECT merchant, count(*) AS n, max(amt) AS mx FROM tx GROUP BY merchant
  WINDOW SLIDING INTERVAL '1 hour';
CHECKPOINT;
SQL
psql -At -c "SELECT tier, row_count, file_count FROM asofdb.storage WHERE table_name = 'tx'"

cat >"$work/read.sql" <<'SQL'
\set k random(1, 50000)
SELECT max_amt FROM card_max_1h WHERE cc_num = :k;
SQL

# pgbench for $1 seconds with per-transaction logs under $work/$2.*
bench() {
    (cd "$work" && pgbench -n -M prepared -c 16 -j 2 -T "$1" -f read.sql -l --log-prefix="$2" >/dev/null)
}

bench 15 quiet
if [[ $pick == top ]]; then
    order="n DESC, user_id"
else
    order="abs(n - (SELECT approx_median(n) FROM user_life)), user_id"
fi
mapfile -t victims < <(psql -At -c "SELECT user_id FROM user_life ORDER BY $order LIMIT $users")
bench $((10 + 12 * users)) busy &
bench_pid=$!
sleep 5
: >"$work/windows"
for u in "${victims[@]}"; do
    perf_pid=
    if [[ -n ${PERF_OUT:-} ]]; then
        perf record -q -F 499 -g -p "$pid" -o "$PERF_OUT" >/dev/null 2>&1 &
        perf_pid=$!
        PERF_OUT=
        sleep 1
    fi
    start=$(date +%s%N)
    tag=$(psql -At -c "DELETE FROM tx WHERE user_id = $u" | tail -1)
    end=$(date +%s%N)
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" && wait "$perf_pid" || true
    fi
    echo "$start $end $u $tag" >>"$work/windows"
    sleep 5
done
# The files listing erased rows are written again without them by the next compaction
# (CHECKPOINT here): its time, and the point reads' p99 while it runs.
start=$(date +%s%N)
psql -q -c "CHECKPOINT"
end=$(date +%s%N)
echo "$start $end" >"$work/checkpoint"
wait "$bench_pid"

python3 - "$work" <<'PY'
import glob, sys
work = sys.argv[1]
def latencies(prefix, keep=lambda end_us: True):
    out = []
    for path in glob.glob(f"{work}/{prefix}.[0-9]*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    end_us = int(parts[4]) * 1_000_000 + int(parts[5])
                    if keep(end_us):
                        out.append(int(parts[2]))
    out.sort()
    return out
def p99(lat):
    return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
windows = [line.split() for line in open(f"{work}/windows")]
quiet = latencies("quiet")
spans = [(int(s) // 1000, int(e) // 1000) for s, e, *_ in windows]
during = latencies("busy", lambda t: any(s <= t <= e for s, e in spans))
for s, e, user, *tag in windows:
    print(f"DELETE user_id = {user}: {(int(e) - int(s)) / 1e9:.2f} s to CommandComplete ({' '.join(tag)})")
print(f"point reads: quiet p99 {p99(quiet)} us ({len(quiet)} reads); during DELETEs p99 {p99(during)} us "
      f"({len(during)} reads); ratio {p99(during) / p99(quiet):.2f}")
s, e = (int(t) // 1000 for t in open(f"{work}/checkpoint").read().split())
checkpoint = latencies("busy", lambda t: s <= t <= e)
print(f"CHECKPOINT after them (rewrites the files listing erased rows): {(e - s) / 1e6:.2f} s; point-read p99 "
      f"during it {p99(checkpoint)} us ({len(checkpoint)} reads); ratio {p99(checkpoint) / p99(quiet):.2f}")
PY
grep "erased" "$work/err" | tail -n "$users" || true
