#!/usr/bin/env bash
# Issue #27's benchmark: the Python package's db.training_set (S spine rows x 3 features over
# N events) against DuckDB SQL over the same DataFrames and against the same query as raw SQL
# (benches/python_training_set.py prints the times and ratios). Release server, fresh data dir.
#
# Usage: benches/python_training_set.sh [events, default 10000000] [spine rows, default 1000000] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
spine=${2:-1000000}
rounds=${3:-3}
source benches/common/release_server.sh
start_server --checkpoint-secs 0
export PGUSER=asofdb
echo "loading $rows events..."
load_transactions "$rows"
# As the server's defaults leave them a minute later (a snapshot every 60 s, tier moves every
# 10 s, one day hot): all but the last day in the cold tier. The run's own snapshots are off
# so that none starts in the middle of a measurement.
psql -q -c "CHECKPOINT"
python3 -m pip install --quiet --disable-pip-version-check ./python duckdb >/dev/null 2>&1
python3 benches/python_training_set.py "postgresql://asofdb@127.0.0.1:$port/asofdb" \
    "target/bench-data/tx_$rows.csv" "$spine" "$rounds"
