# Sourced by the benchmarks that run the release server, from the repository root: makes
# `work` (a temporary directory, removed on exit together with the server started in it),
# builds target/release/asofdb, and defines `start_server [args...]`, which starts it on a free
# port with its data directory in `$work/db`, sets `pid` and `port`, and exports the PG*
# variables that reach it, and `load_transactions ROWS`, which creates table `tx` there and
# copies ROWS generated events into it (generated once into target/bench-data).

work=$(mktemp -d)
pid=
cleanup() {
    # The server stops first: it may still be writing into $work.
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The bench profile builds target/release/asofdb with the same dependency features as the
# benches, so no second DataFusion build is needed.
cargo bench --bench features --no-run >/dev/null 2>&1 || cargo bench --bench features --no-run

start_server() {
    target/release/asofdb --data-dir "$work/db" --listen 127.0.0.1:0 "$@" >"$work/out" 2>"$work/err" &
    pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$work/out" 2>/dev/null && break
        sleep 0.1
    done
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/out")
    export PGHOST=127.0.0.1 PGPORT=$port PGDATABASE=asofdb
}

load_transactions() {
    local csv=target/bench-data/tx_$1.csv
    if [[ ! -f $csv ]]; then
        mkdir -p target/bench-data
        python3 ../shared/data/gen_transactions.py --rows "$1" --cards 50000 --days 30 --seed 7 --transactions "$csv"
    fi
    psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION,
                 status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
\copy tx FROM '$csv' WITH (FORMAT csv, HEADER true)
SQL
}
