#!/usr/bin/env python3
"""The fraud example end to end with the asofdb Python package (docs/python.md walks it):
load generated card transactions, define three features, build a point-in-time training set
from a spine of labelled transactions, train a scikit-learn model, check the same training set
on DuckDB without the server, and score live transactions with the features' current values.

Usage (a server running, as `cargo run --release` starts one):
    pip install ./python scikit-learn
    python3 examples/fraud.py [--dsn postgresql://asofdb@127.0.0.1:5433/asofdb] [--rows 200000] [--reset]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import asofdb

HERE = Path(__file__).resolve().parent
GENERATOR = HERE.parent.parent / "shared" / "data" / "gen_transactions.py"


def generate(rows: int, workdir: str) -> tuple[str, str]:
    """Generated transactions and a spine of labelled transactions, as CSV files."""
    tx, spine = os.path.join(workdir, "tx.csv"), os.path.join(workdir, "spine.csv")
    subprocess.run(
        [sys.executable, str(GENERATOR), "--rows", str(rows), "--cards", "2000", "--days", "10", "--seed", "3",
         "--transactions", tx, "--spine", spine, "--spine-rows", str(rows // 10)],
        check=True,
    )
    return tx, spine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://asofdb@127.0.0.1:5433/asofdb")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--reset", action="store_true", help="drop an existing table transactions first")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="asofdb-fraud-")
    tx_csv, spine_csv = generate(args.rows, work)

    db = asofdb.connect(args.dsn)
    if db.execute("SELECT 1 FROM asofdb.tables WHERE name = 'transactions'"):
        if not args.reset:
            sys.exit("table transactions exists: run with --reset to drop it (and its features) first")
        db.execute("DROP TABLE transactions CASCADE")
    db.execute(
        "CREATE TABLE transactions (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT,"
        " amt DOUBLE PRECISION, status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')"
    )
    with db.conn.cursor() as cur, open(tx_csv) as f:
        with cur.copy("COPY transactions FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(f.read())

    # Three features, declared as in pandas and created on the server (backfilled at once).
    tx = db.table("transactions")

    @asofdb.feature(window=asofdb.sliding("1h"), table="transactions")
    def card_amounts_1h(t):
        return t.groupby("cc_num").agg(tx_count_1h=(None, "size"), tx_max_1h=("amt", "max"), tx_avg_1h=("amt", "mean"))

    @asofdb.feature(window=asofdb.sliding("30d"), table="transactions")
    def user_unique_ip_30d(t):
        return t.groupby("user_id")["ip"].nunique()

    failed_1d = tx[tx.status == "failed"].groupby("cc_num").window(asofdb.sliding("1d", every="5m")).size()
    for feature in (card_amounts_1h, user_unique_ip_30d):
        db.create_feature(feature)
    db.create_feature("card_failed_1d", failed_1d)
    print(db.features()[["name", "keys", "window"]].to_string(index=False))

    # A point-in-time training set: each labelled transaction with the features as they were
    # just before it (strict: its own event is not counted, so no label leakage).
    spine = pd.read_csv(spine_csv)
    spine["inference_ts"] = pd.to_datetime(spine["inference_ts"], format="ISO8601")
    features = ["card_amounts_1h", "user_unique_ip_30d", "card_failed_1d"]
    train = db.training_set(spine, features=features, time="inference_ts", strict=True)
    print(f"training set: {len(train)} rows, columns {list(train.columns)}")

    # The same training set without the server, on DuckDB, from the same rows.
    events = pd.read_csv(tx_csv)
    events["ts"] = pd.to_datetime(events["ts"], format="ISO8601")
    local_tx = asofdb.table("transactions", event_time="ts")
    local = asofdb.local.training_set(
        events,
        spine,
        [card_amounts_1h, user_unique_ip_30d, ("card_failed_1d", local_tx[local_tx.status == "failed"]
                                               .groupby("cc_num").window(asofdb.sliding("1d", every="5m")).size())],
        time="inference_ts",
        engine="duckdb",
        event_time="ts",
    )
    print("DuckDB gives the same training set:", bool(
        (train["tx_count_1h"].fillna(-1) == local["tx_count_1h"].fillna(-1)).all()
        and (train["card_failed_1d"].fillna(-1) == local["card_failed_1d"].fillna(-1)).all()
    ))

    # Train, then score current transactions with the features' current values.
    columns = ["tx_count_1h", "tx_max_1h", "tx_avg_1h", "user_unique_ip_30d", "card_failed_1d"]
    x = train[columns].fillna(0).astype(float)
    model = LogisticRegression(max_iter=1000).fit(x, train["is_fraud"])
    print(f"training AUC: {roc_auc_score(train['is_fraud'], model.predict_proba(x)[:, 1]):.3f}")
    cards = spine["cc_num"].drop_duplicates().head(5).tolist()
    users = spine.drop_duplicates("cc_num").head(5)["user_id"].tolist()
    now = db.online("card_amounts_1h", cc_num=cards).merge(
        db.online("card_failed_1d", cc_num=cards)[["cc_num", "card_failed_1d"]], on="cc_num", how="left"
    )
    now["user_id"] = [users[cards.index(c)] for c in now["cc_num"]]
    now = now.merge(db.online("user_unique_ip_30d", user_id=sorted(set(users)))[["user_id", "user_unique_ip_30d"]],
                    on="user_id", how="left")
    now["p_fraud"] = model.predict_proba(now.reindex(columns=columns).fillna(0).astype(float))[:, 1]
    print(now[["cc_num", "tx_count_1h", "tx_max_1h", "p_fraud"]].to_string(index=False))
    db.close()


if __name__ == "__main__":
    main()
