# Sourced by the point-read benchmarks (benches/point_read_pgbench.sh,
# benches/privileges_pgbench.sh), from the repository root: starts the release binary
# (benches/common/release_server.sh, which sets `work`, `pid`, `port` and the PG* variables)
# with 1M generated events and the feature `card_max_1h` (1-hour max of `amt` by `cc_num`),
# created by role $PGUSER, and writes the pgbench script `$work/read.sql`.

source benches/common/release_server.sh
csv=target/bench-data/tx_1000000.csv
if [[ ! -f $csv ]]; then
    mkdir -p target/bench-data
    python3 ../shared/data/gen_transactions.py --rows 1000000 --cards 50000 --days 30 --seed 7 --transactions "$csv"
fi

start_server --checkpoint-secs 0
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
