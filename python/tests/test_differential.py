"""The three-engine differential: the same feature definitions and spine give the same
training set from the asofdb server, from asofdb.local on DuckDB and from asofdb.local on
Spark, on generated events with late rows, ties, NULL amounts and keys with no events, for
every window kind and aggregate, strict and inclusive."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import asofdb
from conftest import EDGE_KEY, EDGE_TIMES

tx = asofdb.table("transactions", event_time="ts")


@asofdb.feature(window=asofdb.sliding("1h"), table=tx)
def card_stats_1h(t):
    return t.groupby("cc_num").agg(
        n=(None, "size"),
        n_amt=("amt", "count"),
        total=("amt", "sum"),
        mean=("amt", "mean"),
        lo=("amt", "min"),
        hi=("amt", "max"),
        sd=("amt", "std"),
        variance=("amt", "var"),
    )


@asofdb.feature(window=asofdb.sliding("1d", every="5m"), table=tx)
def user_hop_1d(t):
    return t.groupby("user_id").agg(
        ips=("ip", "nunique"), ips_approx=("ip", "approx_nunique"), first_amt=("amt", "first"), last_amt=("amt", "last")
    )


@asofdb.feature(window=asofdb.tumbling("1d"), table=tx)
def failed_today(t):
    return t[t.status == "failed"].groupby(["cc_num", "merchant"]).size()


@asofdb.feature(window=asofdb.session(gap="10m"), table=tx)
def card_session(t):
    return t.groupby("cc_num").agg(
        s_n=(None, "size"),
        top3=("amt", "max_k", 3),
        low2=("amt", "min_k", 2),
        recent3=("amt", "last_k", 3),
        median=("amt", "quantile", 0.5),
    )


@asofdb.feature(window=asofdb.lifetime(), table=tx)
def user_life(t):
    return t[(t.amt > 1) & ~t.merchant.isin(["merchant_000"])].groupby("user_id").agg(
        life_n=(None, "size"),
        decayed=("amt", "decayed_sum", "1h"),
        decayed_n=(None, "decayed_count", "1h"),
        cents=(t.amt * 100, "max"),
    )


FEATURES = [card_stats_1h, user_hop_1d, failed_today, card_session, user_life]

# approx_percentile's bound (docs/features.md): between the exact quantiles at q - 0.02 and
# q + 0.02 (exact below 256 values). Computed locally to check the server's `median`.
median_bounds = (
    "median_bounds",
    tx.groupby("cc_num").window(asofdb.session(gap="10m")).agg(lo=("amt", "quantile", 0.48), hi=("amt", "quantile", 0.52)),
)
# approx_distinct: within three standard errors (2.5%, docs/features.md) of the exact count the
# local engines compute.
APPROXIMATE = {"ips_approx": 0.025}
FLOATS = {"total", "mean", "sd", "variance", "decayed", "decayed_n", "median", "cents", "lo", "hi",
          "first_amt", "last_amt"}


@pytest.fixture(scope="module")
def created(server, data):
    db = asofdb.connect(server)
    for f in FEATURES:
        db.create_feature(f)
    yield db
    for f in FEATURES:
        db.drop_feature(f, if_exists=True)
    db.close()


def same(a, b, column: str) -> bool:
    """Equal values: NULL to NULL, floats within 1e-9 relative, arrays item by item."""
    missing_a = a is None or (isinstance(a, float) and math.isnan(a))
    missing_b = b is None or (isinstance(b, float) and math.isnan(b))
    if missing_a or missing_b:
        return missing_a and missing_b
    if isinstance(a, (list, tuple, np.ndarray)):
        return len(a) == len(b) and all(same(x, y, column) for x, y in zip(list(a), list(b)))
    if column in APPROXIMATE:
        return abs(float(a) - float(b)) <= APPROXIMATE[column] * max(float(a), float(b))
    if column in FLOATS or isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def assert_same(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    assert list(got.columns) == list(want.columns), what
    assert len(got) == len(want), what
    for column in got.columns:
        bad = [i for i, (x, y) in enumerate(zip(got[column], want[column])) if not same(x, y, column)]
        assert not bad, f"{what}: column {column} differs at {len(bad)} rows, first {got.iloc[bad[0]].to_dict()} vs {want.iloc[bad[0]].to_dict()}"


def edge_probes(spine: pd.DataFrame) -> pd.DataFrame:
    """Spine rows of key EDGE_KEY at, just before and just after each of its events' times."""
    at = sorted({t + pd.Timedelta(microseconds=d) for t in EDGE_TIMES for d in (-1, 0, 1)}
                | {EDGE_TIMES[2] + pd.Timedelta("20min")})
    rows = spine.iloc[[0] * len(at)].reset_index(drop=True)
    return rows.assign(inference_ts=at, cc_num=EDGE_KEY, user_id=EDGE_KEY)


@pytest.mark.parametrize("strict", [True, False])
def test_server_duckdb_and_spark_build_the_same_training_set(created, data, strict):
    events, spine = data
    spine = pd.concat([spine, edge_probes(spine)], ignore_index=True)
    spine = spine.assign(merchant=np.where(spine.index % 3 == 0, "merchant_001", "merchant_017"))
    server = created.training_set(spine, features=FEATURES, time="inference_ts", strict=strict)
    duck = asofdb.local.training_set(events, spine, FEATURES, time="inference_ts", strict=strict, engine="duckdb")
    assert len(server) == len(spine)
    assert list(server.columns[: len(spine.columns)]) == list(spine.columns)
    # Every kind of value occurs: matched rows, NULLs of keys with no event yet, empty windows.
    assert server["n"].notna().any() and server["n"].isna().any() and (server["n"] == 0).any()
    assert server["s_n"].notna().any() and (server["failed_today"] > 0).any()
    bounds = asofdb.local.training_set(events, spine, [median_bounds], time="inference_ts", strict=strict)
    within = [
        (lo is None or math.isnan(lo)) and math.isnan(m) or lo - 1e-9 <= m <= hi + 1e-9
        for m, lo, hi in zip(server["median"], bounds["lo"], bounds["hi"])
    ]
    outside = [(m, lo, hi, n) for ok, m, lo, hi, n in zip(within, server["median"], bounds["lo"], bounds["hi"], server["s_n"]) if not ok]
    assert not outside, f"approx_percentile outside its bound at {len(outside)} rows: (value, lo, hi, events) {outside[:5]}"
    assert_same(server.drop(columns=["median"]), duck.drop(columns=["median"]), f"server vs DuckDB (strict={strict})")
    spark = asofdb.local.training_set(events, spine, FEATURES, time="inference_ts", strict=strict, engine="spark")
    assert_same(spark, duck, f"Spark vs DuckDB (strict={strict})")
