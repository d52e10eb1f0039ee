# Sourced by the point-read benchmarks (benches/point_read_pgbench.sh,
# benches/privileges_pgbench.sh), from the repository root: builds the release binary, starts
# it on a free port with 1M generated events and the feature `card_max_1h` (1-hour max of `amt`
# by `cc_num`), created by role $PGUSER, and writes the pgbench script `$work/read.sql`.
# Sets `work` (a temporary directory, removed on exit), `pid` and `port`, and exports the
# PG* variables that reach it.

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
export PGHOST=127.0.0.1 PGPORT=$port PGDATABASE=asofdb
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
