#!/usr/bin/env python3
"""Issue #27's benchmark: `db.training_set` for a spine of S rows x 3 features over N events,
wall time from the Python call to the DataFrame in hand, against
  (a) the same job done the best way a pandas user could without asofdb: DuckDB SQL over the
      same DataFrames (the point-in-time query asofdb.local generates, run by DuckDB: window
      functions over the events and the spine rows together, docs/python.md), and
  (b) the same training-set query issued as raw SQL through psycopg (spine uploaded with COPY,
      the ASOF JOIN query fetched with a cursor into a DataFrame).
Prints each time and the ratios. Run by benches/python_training_set.sh, which starts the
release server and loads the events into table `tx`.

Usage: python_training_set.py DSN EVENTS_CSV SPINE_ROWS [ROUNDS]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

import asofdb
from asofdb.transfer import binary_copy

FEATURES = {
    "card_amounts_1h": lambda tx: tx.groupby("cc_num").window(asofdb.sliding("1h")).agg(
        tx_count_1h=(None, "size"), tx_max_1h=("amt", "max"), tx_avg_1h=("amt", "mean")
    ),
    "user_ips_1d": lambda tx: tx.groupby("user_id")["ip"].window(asofdb.sliding("1d")).nunique(),
    "card_failed_1d": lambda tx: tx[tx.status == "failed"].groupby("cc_num").window(asofdb.sliding("1d")).size(),
}


def timed(what: str, run):
    started = time.perf_counter()
    result = run()
    took = time.perf_counter() - started
    print(f"{what}: {took:.2f} s", flush=True)
    return took, result


def main() -> None:
    dsn, events_csv, spine_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    db = asofdb.connect(dsn)
    tx = db.table("tx")
    for name, define in FEATURES.items():
        db.create_feature(name, define(tx), replace=True)
    events = pd.read_csv(events_csv)
    events["ts"] = pd.to_datetime(events["ts"], format="ISO8601")
    rng = np.random.default_rng(1)
    sample = events.sample(n=spine_rows, replace=True, random_state=1)
    spine = pd.DataFrame(
        {
            "tid": np.arange(spine_rows, dtype=np.int64),
            "cc_num": sample["cc_num"].to_numpy(),
            "user_id": sample["user_id"].to_numpy(),
            "inference_ts": (sample["ts"] + pd.to_timedelta(rng.integers(0, 3600, spine_rows), unit="s")).to_numpy(),
            "is_fraud": rng.random(spine_rows) < 0.01,
        }
    )
    local_tx = asofdb.table("tx", event_time="ts")
    local_features = [(name, define(local_tx)) for name, define in FEATURES.items()]
    names = list(FEATURES)

    def raw_sql() -> pd.DataFrame:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMPORARY TABLE raw_spine (tid BIGINT, cc_num BIGINT, user_id BIGINT,"
                        " inference_ts TIMESTAMP, is_fraud BOOLEAN)")
            # The same upload as the package's (its binary COPY encoder): only the query and
            # the way rows come back differ.
            with cur.copy("COPY raw_spine FROM STDIN (FORMAT binary)") as copy:
                copy.write(binary_copy(pa.Table.from_pandas(spine, preserve_index=False)))
            cur.execute(
                "SELECT s.*, a.tx_count_1h, a.tx_max_1h, a.tx_avg_1h, u.user_ips_1d, f.card_failed_1d"
                " FROM raw_spine s"
                " ASOF LEFT JOIN card_amounts_1h a ON s.cc_num = a.cc_num AND s.inference_ts > a.ts"
                " ASOF LEFT JOIN user_ips_1d u ON s.user_id = u.user_id AND s.inference_ts > u.ts"
                " ASOF LEFT JOIN card_failed_1d f ON s.cc_num = f.cc_num AND s.inference_ts > f.ts"
            )
            names_ = [c.name for c in cur.description]
            out = pd.DataFrame(cur.fetchall(), columns=names_)
            cur.execute("DROP TABLE raw_spine")
            return out

    print(f"{len(events)} events, spine {spine_rows} rows, 3 features ({', '.join(names)})")
    for r in range(rounds):
        ours, train = timed(f"round {r + 1}: db.training_set", lambda: db.training_set(spine, features=names))
        duck, local = timed(
            f"round {r + 1}: DuckDB SQL over the DataFrames (asofdb.local)",
            lambda: asofdb.local.training_set(events, spine, local_features, engine="duckdb"),
        )
        raw, _ = timed(f"round {r + 1}: the same query as raw SQL (psycopg COPY + cursor)", raw_sql)
        assert len(train) == len(local) == spine_rows
        for column in ("tx_count_1h", "user_ips_1d", "card_failed_1d"):
            assert (train[column].fillna(-1) == local[column].fillna(-1)).all(), f"{column} differs from DuckDB's"
        print(f"round {r + 1}: DuckDB / asofdb {duck / ours:.2f}x (goal >= 3x); asofdb / raw SQL "
              f"{ours / raw:.2f}x (goal <= 1.2x); counts equal DuckDB's", flush=True)
    db.close()


if __name__ == "__main__":
    main()
