"""One asofdb server (the real binary, on a free loopback port and a temporary data directory)
for the whole test session, and generated fraud-style events loaded into it."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO.parent / "shared" / "data" / "gen_transactions.py"

TABLE = """CREATE TABLE transactions (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT,
    amt DOUBLE PRECISION, status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')"""


def binary() -> str:
    """The server binary: ASOFDB_BIN, else the debug build cargo test made (built if absent)."""
    explicit = os.environ.get("ASOFDB_BIN")
    if explicit:
        return explicit
    path = REPO / "target" / "debug" / "asofdb"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "asofdb"], cwd=REPO, check=True)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    """The DSN of a running server, stopped after the session."""
    yield from running_server()


@pytest.fixture
def own_server():
    """A server of the test's own, on an empty data directory."""
    yield from running_server()


def running_server():
    data = tempfile.TemporaryDirectory(prefix="asofdb-py-")
    port = free_port()
    log = open(Path(data.name) / "server.log", "w")
    proc = subprocess.Popen(
        [binary(), "--data-dir", str(Path(data.name) / "db"), "--listen", f"127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    dsn = f"postgresql://asofdb@127.0.0.1:{port}/asofdb"
    deadline = time.time() + 120
    while True:
        try:
            psycopg.connect(dsn).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                raise RuntimeError("the server did not start:\n" + (Path(data.name) / "server.log").read_text())
            time.sleep(0.1)
    yield dsn
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
    data.cleanup()


def generate(rows: int, spine_rows: int, seed: int = 11):
    """Generated transactions (late rows, ties, power-law keys) and a spine, as DataFrames."""
    out = tempfile.mkdtemp(prefix="asofdb-gen-")
    tx, spine = os.path.join(out, "tx.csv"), os.path.join(out, "spine.csv")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--rows", str(rows), "--cards", "300", "--days", "4", "--seed", str(seed),
         "--transactions", tx, "--spine", spine, "--spine-rows", str(spine_rows)],
        check=True,
    )
    # Times with and without fractions of seconds: ISO 8601 reads both.
    events = pd.read_csv(tx)
    events["ts"] = pd.to_datetime(events["ts"], format="ISO8601")
    probes = pd.read_csv(spine)
    probes["inference_ts"] = pd.to_datetime(probes["inference_ts"], format="ISO8601")
    return tx, events, probes


EDGE_KEY = 777777
_MIDNIGHT = pd.Timestamp("2024-01-03")
EDGE_TIMES = [_MIDNIGHT + pd.Timedelta(d) for d in
              ["-1h", "-1us", "0s", "0s", "5min", "15min", "1h", "1D"]]


@pytest.fixture(scope="session")
def data(server):
    """(events, spine) DataFrames, the events loaded into table `transactions` in file order."""
    path, events, spine = generate(20_000, 3_000)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(TABLE)
        with conn.cursor() as cur, open(path, newline="") as f:
            with cur.copy("COPY transactions FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(f.read())
    # A few NULL amounts and a row of an unseen card, so NULL arguments and empty keys count.
    with psycopg.connect(server, autocommit=True) as conn:
        extra = [(990001, 7, 7, "merchant_001", None, "ok", "10.0.0.1", "2024-01-02 03:04:05"),
                 (990002, 424242, 9, "merchant_002", 5.5, "failed", "10.0.0.2", "2024-01-02 03:04:05")]
        # Card and user EDGE_KEY: events on the boundaries of windows, buckets and hops (a tie
        # at midnight, one a microsecond before, one at the 10-minute session gap), where the
        # differential's spine rows probe them (test_differential.py).
        extra += [(990100 + i, EDGE_KEY, EDGE_KEY, "merchant_001", None if i == 3 else float(i), "failed",
                   f"10.9.9.{i % 3}", str(t)) for i, t in enumerate(EDGE_TIMES)]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO transactions VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", extra)
    added = pd.DataFrame(
        [dict(zip(["tid", "cc_num", "user_id", "merchant", "amt", "status", "ip", "ts"], r)) for r in extra]
    )
    added["ts"] = pd.to_datetime(added["ts"], format="ISO8601")
    events = pd.concat([events, added], ignore_index=True)
    return events, spine


def read_csv_rows(path: str):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
