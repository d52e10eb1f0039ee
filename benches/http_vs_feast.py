#!/usr/bin/env python3
"""Feature vectors over HTTP: asofdb's `POST /v1/features` against Feast's feature server on
Redis holding the same values, in one run (issue #28), with Redis' own GET rate beside them.

1. asofdb (started here with `--http`) loads the generator's events (COPY) and three
   features by card: 30-day count, max and average of the amount.
2. The features' current values are read back from asofdb (`SELECT * FROM feature`) and
   written to Feast's Redis online store (`FeatureStore.write_to_online_store`) for one
   feature view with the same three values, so both servers hold the same numbers.
3. `wrk -t2 -c16 --latency` posts one request per call for a random card (keep-alive):
   asofdb `{"features": [three features], "entities": [{"cc_num": k}]}`, Feast
   `{"features": ["card_30d:n", ...], "entities": {"cc_num": [k]}}` at `/get-online-features`
   (`feast serve`, its default single worker). Printed: requests/s and latency percentiles
   of each, and the ratio.
4. `redis-benchmark -t get -c 16` on the same Redis: the in-memory ceiling.

Needs: wrk and redis-server (Debian), Feast with Redis (`pip install "feast[redis]"`, in the
virtual environment given by --feast-venv, created if missing). Everything runs on this
machine's cores at once, as in the other benchmarks.

Usage: python3 benches/http_vs_feast.py [--rows 100000] [--cards 5000] [--seconds 10]
                                         [--binary target/release/asofdb] [--feast-venv DIR]
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATOR = os.path.join(ROOT, "..", "shared", "data", "gen_transactions.py")

FEATURES = {
    "card_count_30d": "count(*) AS n",
    "card_max_30d": "max(amt) AS max_amt",
    "card_avg_30d": "avg(amt) AS avg_amt",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_asofdb(work, binary):
    out = open(os.path.join(work, "asofdb.out"), "w+")
    proc = subprocess.Popen([binary, "--data-dir", os.path.join(work, "asofdb"), "--listen", "127.0.0.1:0",
                             "--http", "127.0.0.1:0", "--checkpoint-secs", "0"], stdout=out,
                            stderr=open(os.path.join(work, "asofdb.err"), "w"))
    for _ in range(300):
        out.seek(0)
        text = out.read()
        pg = re.search(r"^asofdb listening on 127\.0\.0\.1:(\d+)$", text, re.M)
        http = re.search(r"^asofdb http listening on (\S+)$", text, re.M)
        if pg and http:
            return proc, int(pg.group(1)), http.group(1)
        time.sleep(0.1)
    raise SystemExit("asofdb did not start")


def psql(port, sql):
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", ",", "-h", "127.0.0.1", "-p", str(port), "-U",
                           "bench", "-d", "asofdb", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def load_asofdb(port, work, rows, cards):
    csv = os.path.join(work, "tx.csv")
    subprocess.run([sys.executable, GENERATOR, "--rows", str(rows), "--cards", str(cards), "--transactions", csv],
                   check=True)
    psql(port, "CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, "
               "status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')")
    psql(port, f"\\copy tx FROM '{csv}' WITH (FORMAT csv, HEADER true)")
    for name, value in FEATURES.items():
        psql(port, f"CREATE FEATURE {name} AS SELECT cc_num, {value} FROM tx GROUP BY cc_num "
                   "WINDOW SLIDING INTERVAL '30 days'")
    # The values as of now, one row per card, for Feast to hold the same.
    out = psql(port, "SELECT c.cc_num, c.n, m.max_amt, a.avg_amt, c.ts FROM card_count_30d c "
                     "JOIN card_max_30d m USING (cc_num) JOIN card_avg_30d a USING (cc_num) ORDER BY c.cc_num")
    return [line.split(",") for line in out.splitlines() if line]


FEAST_REPO = """
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

card = Entity(name="card", join_keys=["cc_num"], value_type=ValueType.INT64)
source = FileSource(path="{parquet}", timestamp_field="ts")
card_30d = FeatureView(
    name="card_30d",
    entities=[card],
    ttl=timedelta(days=36500),
    schema=[Field(name="n", dtype=Int64), Field(name="max_amt", dtype=Float64), Field(name="avg_amt", dtype=Float64)],
    source=source,
    online=True,
)
"""

FEAST_YAML = """project: bench
registry: {registry}
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:{redis_port}"
offline_store:
  type: file
entity_key_serialization_version: 3
"""

FEAST_LOAD = """
import sys
import pandas as pd
from feast import FeatureStore
rows = [line.split(",") for line in open(sys.argv[2]).read().splitlines()]
df = pd.DataFrame({{
    "cc_num": [int(r[0]) for r in rows],
    "n": [int(r[1]) for r in rows],
    "max_amt": [float(r[2]) for r in rows],
    "avg_amt": [float(r[3]) for r in rows],
    "ts": pd.to_datetime([r[4] for r in rows]),
}})
df.to_parquet(sys.argv[3])
store = FeatureStore(repo_path=sys.argv[1])
store.apply([__import__("features").card, __import__("features").card_30d])
store.write_to_online_store("card_30d", df)
print(store.get_online_features(features=["card_30d:n", "card_30d:max_amt", "card_30d:avg_amt"],
                                entity_rows=[{{"cc_num": int(rows[0][0])}}]).to_dict())
"""


def start_feast(work, venv, values):
    redis_port, feast_port = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    repo = os.path.join(work, "feast")
    os.makedirs(repo)
    parquet = os.path.join(repo, "card_30d.parquet")
    with open(os.path.join(repo, "features.py"), "w") as f:
        f.write(FEAST_REPO.format(parquet=parquet))
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(FEAST_YAML.format(registry=os.path.join(repo, "registry.db"), redis_port=redis_port))
    with open(os.path.join(work, "values.csv"), "w") as f:
        f.write("\n".join(",".join(row) for row in values))
    with open(os.path.join(repo, "load.py"), "w") as f:
        f.write(FEAST_LOAD.format())
    python = os.path.join(venv, "bin", "python")
    time.sleep(0.5)
    check = subprocess.run([python, "load.py", repo, os.path.join(work, "values.csv"), parquet], cwd=repo,
                           check=True, capture_output=True, text=True)
    print("feast holds:", check.stdout.strip()[:200])
    server = subprocess.Popen([os.path.join(venv, "bin", "feast"), "serve", "-h", "127.0.0.1", "-p", str(feast_port)],
                              cwd=repo, stdout=open(os.path.join(work, "feast.out"), "w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", feast_port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit("feast serve did not start")
    return redis, redis_port, server, f"127.0.0.1:{feast_port}"


WRK_SCRIPT = """
math.randomseed({seed})
local cards = {{{cards}}}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local k = cards[math.random(#cards)]
  return wrk.format(nil, "{path}", nil, string.format('{body}', k))
end
"""


def run_wrk(work, name, addr, path, body, cards, seconds):
    script = os.path.join(work, f"{name}.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT.format(seed=7, cards=",".join(cards), path=path, body=body))
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", script, f"http://{addr}"],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {p: re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M) for p in ("50", "99")}
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    ms = {p: float(m.group(1)) * scale[m.group(2)] for p, m in lat.items()}
    return {"rps": rps, "p50": ms["50"], "p99": ms["99"], "errors": int(non2xx.group(1)) if non2xx else 0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cards", type=int, default=5_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "asofdb"))
    ap.add_argument("--feast-venv", default=os.path.join(tempfile.gettempdir(), "feast-venv"))
    args = ap.parse_args()
    for tool in ("wrk", "redis-server", "redis-benchmark", "psql"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install wrk redis-server postgresql-client")
    if not os.path.exists(os.path.join(args.feast_venv, "bin", "feast")):
        subprocess.run([sys.executable, "-m", "venv", args.feast_venv], check=True)
        subprocess.run([os.path.join(args.feast_venv, "bin", "pip"), "install", "-q", "feast[redis]"], check=True)

    work = tempfile.mkdtemp(prefix="http-bench-")
    procs = []
    try:
        asofdb, pg_port, http = start_asofdb(work, args.binary)
        procs.append(asofdb)
        values = load_asofdb(pg_port, work, args.rows, args.cards)
        cards = [row[0] for row in values]
        print(f"{len(cards)} cards, 3 values each, in both servers")
        redis, redis_port, feast, feast_addr = start_feast(work, args.feast_venv, values)
        procs += [redis, feast]

        names = ", ".join(f'"{name}"' for name in FEATURES)
        ours = run_wrk(work, "asofdb", http, "/v1/features",
                       '{"features": [' + names + '], "entities": [{"cc_num": %d}]}', cards, args.seconds)
        theirs = run_wrk(work, "feast", feast_addr, "/get-online-features",
                         '{"features": ["card_30d:n", "card_30d:max_amt", "card_30d:avg_amt"], '
                         '"entities": {"cc_num": [%d]}}', cards, args.seconds)
        ceiling = subprocess.run(["redis-benchmark", "-p", str(redis_port), "-t", "get", "-c", "16", "-n", "200000",
                                  "-q"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]

        print(f"{'server':<34} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for name, r in (("asofdb POST /v1/features", ours), ("Feast feature server on Redis", theirs)):
            print(f"{name:<34} {r['rps']:>11.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['errors']:>8}")
        print(f"ratio asofdb / Feast, requests/s: {ours['rps'] / theirs['rps']:.2f}x (goal >= 5x, p99 <= 1 ms)")
        print(f"redis-benchmark GET, 16 clients: {ceiling.strip()}")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
