#!/usr/bin/env python3
"""Point reads of a maintained feature in asofdb against primary-key lookups of the same
values, precomputed into a table, in PostgreSQL: same data, same pgbench settings, same run.

Both servers get the generator's events (1M by default). asofdb maintains
`card_max_1h` (max amt per card over a sliding hour); PostgreSQL gets that feature's values,
exported from asofdb with COPY, as a table with a primary key. pgbench then runs
`SELECT max_amt FROM card_max_1h WHERE cc_num = :k` (k random among the cards) against each,
`-M prepared -c 16 -j 2`, one after the other, and the script prints each side's QPS and
latency percentiles (from pgbench's per-transaction log) and the ratio.

PostgreSQL is Debian's `postgresql` (installed if missing), started by this script with
initdb on a temporary data directory and a free loopback port, with default settings.

Usage: python3 benches/pgbench_vs_postgres.py [--seconds 20] [--rows 1000000] [--rounds 1]
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERATOR = os.path.join(ROOT, "..", "shared", "data", "gen_transactions.py")

TX_DDL = ("CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, "
          "status TEXT, ip TEXT, ts TIMESTAMP NOT NULL)")
READ_SCRIPT = "\\set k random(1, {cards})\nSELECT max_amt FROM card_max_1h WHERE cc_num = :k;\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def psql(port, sql, user="bench"):
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U", user,
         "-d", "asofdb" if user == "bench" else "postgres", "-c", sql])


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        print("installing Debian's postgresql", file=sys.stderr)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run(sudo + ["apt-get", "update", "-qq"])
        run(sudo + ["apt-get", "install", "-y", "-qq", "postgresql"], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1])


def start_asofdb(work, binary=None):
    if binary is None:
        run(["cargo", "bench", "--bench", "features", "--no-run"], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        binary = os.path.join(ROOT, "target", "release", "asofdb")
    out = open(os.path.join(work, "asofdb.out"), "w+")
    proc = subprocess.Popen([binary, "--data-dir", os.path.join(work, "asofdb"),
                             "--listen", "127.0.0.1:0", "--checkpoint-secs", "0"], stdout=out,
                            stderr=open(os.path.join(work, "asofdb.err"), "w"))
    for _ in range(300):
        out.seek(0)
        line = out.readline()
        if "listening on" in line:
            return proc, int(line.rsplit(":", 1)[1])
        time.sleep(0.1)
    raise SystemExit("asofdb did not start")


def start_postgres(work, settings=""):
    bindir = postgres_bin()
    data = os.path.join(work, "pg")
    # initdb and postgres refuse to run as root: run them as the postgres user if we are root.
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(work, "postgres")
    run(as_pg + [os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        stdout=subprocess.DEVNULL)
    port = free_port()
    run(as_pg + [os.path.join(bindir, "pg_ctl"), "-D", data, "-l", os.path.join(work, "pg.log"), "-w", "-o",
                 f"-p {port} -k {work} -c listen_addresses=127.0.0.1 {settings}", "start"], stdout=subprocess.DEVNULL)
    psql(port, "CREATE ROLE bench LOGIN SUPERUSER", user="postgres")
    psql(port, "CREATE DATABASE asofdb OWNER bench", user="postgres")
    stop = as_pg + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "stop"]
    return port, stop


def stop_all(asofdb, pg_stop, work):
    """Stops what a benchmark started (either may be None) and removes its directory."""
    if asofdb:
        asofdb.terminate()
        asofdb.wait()
    if pg_stop:
        subprocess.run(pg_stop, stdout=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


def pgbench(port, work, name, cards, seconds):
    script = os.path.join(work, "read.sql")
    with open(script, "w") as f:
        f.write(READ_SCRIPT.format(cards=cards))
    logdir = os.path.join(work, name)
    os.makedirs(logdir, exist_ok=True)
    out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c", "16", "-j", "2", "-T", str(seconds), "-f", script,
                          "-l", "--log-prefix", os.path.join(logdir, "read"), "-h", "127.0.0.1", "-p", str(port),
                          "-U", "bench", "asofdb"], check=True, capture_output=True, text=True).stdout
    tps = float(next(line for line in out.splitlines() if line.startswith("tps =")).split()[2])
    failed = next(line for line in out.splitlines() if line.startswith("number of failed transactions"))
    lat = []
    for path in glob.glob(os.path.join(logdir, "read.*")):
        with open(path) as f:
            lat += [int(line.split()[2]) for line in f if line.strip()]
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
    return {"tps": tps, "failed": failed, "n": len(lat), "p50": pick(0.5), "p99": pick(0.99), "p999": pick(0.999)}


def generated_transactions(rows, cards):
    """The generator's events (seed 7, 30 days) as CSV, made once and kept in target/bench-data/."""
    data_dir = os.path.join(ROOT, "target", "bench-data")
    os.makedirs(data_dir, exist_ok=True)
    csv = os.path.join(data_dir, f"tx_{rows}_{cards}cards.csv")
    if not os.path.exists(csv):
        run([sys.executable, GENERATOR, "--rows", str(rows), "--cards", str(cards), "--days", "30",
             "--seed", "7", "--transactions", csv])
    return csv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cards", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two servers this many times")
    ap.add_argument("--binary", help="the asofdb binary to measure (default: build target/release/asofdb)")
    args = ap.parse_args()

    csv = generated_transactions(args.rows, args.cards)

    work = tempfile.mkdtemp(prefix="pgbench-vs-pg-")
    os.chmod(work, 0o755)
    asofdb = pg_stop = None
    try:
        asofdb, port = start_asofdb(work, args.binary)
        psql(port, f"{TX_DDL} WITH (event_time = 'ts')")
        psql(port, f"\\copy tx FROM '{csv}' WITH (FORMAT csv, HEADER true)")
        psql(port, "CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num "
                   "WINDOW SLIDING INTERVAL '1 hour'")
        # Like VACUUM ANALYZE on the PostgreSQL side: the background moves of the loaded rows
        # to the cold tier finish now, not during the first measured round.
        psql(port, "CHECKPOINT")
        values = os.path.join(work, "card_max_1h.csv")
        psql(port, f"\\copy (SELECT cc_num, max_amt FROM card_max_1h) TO '{values}' WITH (FORMAT csv)")
        os.chmod(values, 0o644)

        pg_port, pg_stop = start_postgres(work)
        psql(pg_port, "CREATE TABLE card_max_1h (cc_num BIGINT PRIMARY KEY, max_amt DOUBLE PRECISION)")
        psql(pg_port, f"\\copy card_max_1h FROM '{values}' WITH (FORMAT csv)")
        psql(pg_port, "VACUUM ANALYZE card_max_1h")
        keys = sum(1 for _ in open(values))
        print(f"{args.rows} events, {keys} keys with a value; pgbench -M prepared -c 16 -j 2 -T {args.seconds}")

        for round_ in range(args.rounds):
            a = pgbench(port, work, f"asofdb{round_}", args.cards, args.seconds)
            p = pgbench(pg_port, work, f"postgres{round_}", args.cards, args.seconds)
            for name, r in (("asofdb", a), ("postgres", p)):
                print(f"  {name:9} {r['tps']:9.0f} tps  p50 {r['p50']:.3f} ms  p99 {r['p99']:.3f} ms  "
                      f"p99.9 {r['p999']:.3f} ms  ({r['n']} reads; {r['failed']})")
            print(f"  ratio asofdb/postgres: {a['tps'] / p['tps']:.2f}x QPS")
    finally:
        stop_all(asofdb, pg_stop, work)


if __name__ == "__main__":
    main()
