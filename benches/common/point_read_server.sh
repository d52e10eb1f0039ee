# Sourced by the point-read benchmarks (benches/point_read_pgbench.sh,
# benches/privileges_pgbench.sh), from the repository root: starts the release binary
# (benches/common/release_server.sh, which sets `work`, `pid`, `port` and the PG* variables)
# with 1M generated events and the feature `card_max_1h` (1-hour max of `amt` by `cc_num`),
# created by role $PGUSER, and writes the pgbench script `$work/read.sql`.

source benches/common/release_server.sh
start_server --checkpoint-secs 0
load_transactions 1000000
psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num
  WINDOW SLIDING INTERVAL '1 hour';
SQL

cat >"$work/read.sql" <<'SQL'
\set k random(1, 50000)
SELECT max_amt FROM card_max_1h WHERE cc_num = :k;
SQL
