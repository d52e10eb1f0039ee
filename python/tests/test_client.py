"""The package's API against the real server: definitions compiled and created, errors with
their SQLSTATEs (or refused before sending), training sets, online values, a spine of 1M rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import asofdb
from asofdb import DefinitionError, ServerError


@pytest.fixture(scope="module")
def db(server, data):
    with asofdb.connect(server) as db:
        yield db


def test_every_window_kind_and_aggregate_compiles_to_the_spec_syntax():
    tx = asofdb.table("transactions", event_time="ts")
    by_card = tx.groupby("cc_num")
    cases = {
        by_card["amt"].window(asofdb.sliding("1h")).mean(): 'avg("amt")',
        by_card["amt"].window(asofdb.sliding("30 days")).sum(): 'sum("amt")',
        by_card["amt"].count(): 'count("amt")',
        by_card.size(): "count(*)",
        by_card["amt"].min(): 'min("amt")',
        by_card["amt"].max(): 'max("amt")',
        by_card["ip"].nunique(): 'count(DISTINCT "ip")',
        by_card["amt"].std(): 'stddev_samp("amt")',
        by_card["amt"].var(): 'var_samp("amt")',
        by_card["amt"].first(): 'first_value("amt")',
        by_card["amt"].last(): 'last_value("amt")',
        by_card["ip"].approx_nunique(): 'approx_distinct("ip")',
        by_card["amt"].last_k(5): 'last_k("amt", 5)',
        by_card["amt"].max_k(3): 'max_k("amt", 3)',
        by_card["amt"].min_k(3): 'min_k("amt", 3)',
        by_card["amt"].quantile(0.9): 'approx_percentile("amt", 0.9)',
        by_card["amt"].decayed_sum("1h"): "decayed_sum(\"amt\", INTERVAL '1 hours')",
        by_card.agg(d=(None, "decayed_count", "90s")): "decayed_count(INTERVAL '90 seconds')",
    }
    for expr, aggregate in cases.items():
        assert f"SELECT \"cc_num\", {aggregate} AS " in expr.to_sql("asofdb")
    windows = {
        asofdb.sliding("1h"): "WINDOW SLIDING INTERVAL '1 hours'",
        asofdb.sliding("1d", every="5m"): "WINDOW SLIDING INTERVAL '1 days' EVERY INTERVAL '5 minutes'",
        asofdb.tumbling("1d"): "WINDOW TUMBLING INTERVAL '1 days'",
        asofdb.session(gap="10m"): "WINDOW SESSION GAP INTERVAL '10 minutes'",
        asofdb.lifetime(): "WINDOW LIFETIME",
    }
    for window, clause in windows.items():
        sql = by_card["amt"].window(window).max().spec.create_sql("f")
        assert sql == f'CREATE FEATURE "f" AS SELECT "cc_num", max("amt") AS "f" FROM "transactions" GROUP BY "cc_num" {clause}'
    filtered = tx[(tx.status == "failed") & ~tx.merchant.isin(["a'b"]) | tx.amt.isna()]
    sql = filtered.groupby(["cc_num", "merchant"])[tx.amt * 100 / 3].window(asofdb.sliding("1d")).sum().to_sql()
    assert sql == (
        'SELECT "cc_num", "merchant", sum((CAST(("amt" * 100) AS DOUBLE PRECISION) / 3)) AS "amt_sum" '
        'FROM "transactions" WHERE ((("status" = \'failed\') AND (NOT ("merchant" IN (\'a\'\'b\')))) '
        'OR ("amt" IS NULL)) GROUP BY "cc_num", "merchant" WINDOW SLIDING INTERVAL \'1 days\''
    )
    spark = filtered.groupby("cc_num")["amt"].max().to_sql("spark", name="m")
    assert "'a\\'b'" in spark and "`merchant`" in spark


def test_definitions_that_cannot_work_fail_before_anything_is_sent(db):
    tx = db.table("transactions")
    assert tx.event_time == "ts"
    with pytest.raises(DefinitionError, match="no column 'amount'"):
        tx.groupby("cc_num")["amount"]
    with pytest.raises(DefinitionError, match="no column"):
        tx[tx.nope > 1]
    with pytest.raises(DefinitionError, match="must be aggregates"):
        tx.groupby("cc_num")["amt"].median()
    with pytest.raises(DefinitionError, match="aggregate of grouped rows"):
        db.create_feature("x", tx.amt)
    with pytest.raises(DefinitionError, match="k must be an integer"):
        tx.groupby("cc_num")["amt"].last_k(0)
    with pytest.raises(DefinitionError, match="q must be a number"):
        tx.groupby("cc_num")["amt"].quantile(1.5)
    with pytest.raises(DefinitionError, match="truth value"):
        tx[tx.amt > 1 and tx.amt < 5]
    with pytest.raises(DefinitionError, match="duration"):
        asofdb.sliding("an hour")
    with pytest.raises(DefinitionError, match="kept for asofdb"):
        db.create_feature("x", tx.groupby("cc_num").window(asofdb.sliding("1h")).agg(__row=("amt", "max")))

    @asofdb.feature(table="transactions")
    def grouped_only(t):
        return t.groupby("cc_num")["amt"]

    with pytest.raises(DefinitionError, match="grouped column"):
        db.create_feature(grouped_only)
    db.execute("CREATE TABLE plain (k BIGINT, v DOUBLE PRECISION)")
    try:
        plain = db.table("plain")
        assert plain.event_time is None
        with pytest.raises(DefinitionError, match="event table"):
            db.create_feature("p", plain.groupby("k")["v"].window(asofdb.sliding("1h")).max())
    finally:
        db.execute("DROP TABLE plain")
    with pytest.raises(ServerError) as missing:
        db.table("no_such_table")
    assert missing.value.sqlstate == "42P01"


def test_features_are_created_listed_replaced_read_and_dropped(db, data):
    events, _ = data
    tx = db.table("transactions")
    statement = db.create_feature("py_card_max", tx.groupby("cc_num")["amt"].window(asofdb.sliding("1h")).max())
    assert statement.startswith('CREATE FEATURE "py_card_max" AS SELECT')
    listed = db.features()
    row = listed[listed["name"] == "py_card_max"].iloc[0]
    assert row["source_table"] == "transactions" and row["keys"] == "cc_num"
    with pytest.raises(ServerError) as duplicate:
        db.create_feature("py_card_max", tx.groupby("cc_num")["amt"].max())
    assert duplicate.value.sqlstate == "42P07"
    db.create_feature("py_card_max", tx.groupby("cc_num")["amt"].window(asofdb.lifetime()).max(), replace=True)
    assert "LIFETIME" in db.features().set_index("name").loc["py_card_max", "window"]
    # Online values equal the feature read as a table, for the keys asked, in their order.
    cards = [int(c) for c in events["cc_num"].drop_duplicates().head(5)] + [123456789]
    online = db.online("py_card_max", cc_num=cards)
    assert list(online["cc_num"]) == cards[:5]
    want = events.groupby("cc_num")["amt"].max()
    assert np.allclose(online["py_card_max"], [want[c] for c in cards[:5]])
    db.drop_feature("py_card_max")
    assert "py_card_max" not in set(db.features()["name"])
    with pytest.raises(ServerError) as gone:
        db.drop_feature("py_card_max")
    assert gone.value.sqlstate == "42704"
    db.drop_feature("py_card_max", if_exists=True)


def test_online_takes_several_key_columns(db):
    tx = db.table("transactions")
    db.create_feature("py_pair", tx.groupby(["cc_num", "merchant"]).size())
    try:
        rows = db.sql('SELECT cc_num, merchant, py_pair FROM py_pair ORDER BY py_pair DESC LIMIT 3')
        got = db.online("py_pair", cc_num=list(rows["cc_num"]) + [1], merchant=list(rows["merchant"]) + ["none"])
        assert got[["cc_num", "merchant", "py_pair"]].values.tolist() == rows.values.tolist()
        with pytest.raises(DefinitionError, match="keyed by"):
            db.online("py_pair", cc_num=[1])
    finally:
        db.drop_feature("py_pair")


def test_a_spine_of_a_million_rows_round_trips_with_its_types(db, data):
    events, _ = data
    n = 1_000_000
    rng = np.random.default_rng(5)
    cards = events["cc_num"].unique()
    start = events["ts"].min()
    spine = pd.DataFrame(
        {
            "row_id": np.arange(n, dtype=np.int64),
            "cc_num": rng.choice(cards, n),
            "inference_ts": start + pd.to_timedelta(rng.integers(0, 4 * 86_400, n), unit="s"),
            "small": rng.integers(-5, 5, n).astype(np.int32),
            "score": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "label": rng.random(n) < 0.5,
            "note": pd.array(np.where(rng.random(n) < 0.1, None, np.where(rng.random(n) < 0.5, "", 'a "q", b\'s')), dtype=object),
            "zoned": pd.date_range("2024-01-01", periods=n, freq="s", tz="UTC"),
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=int(i % 9)) for i in range(n)],
        }
    )
    db.create_feature("py_card_n", db.table("transactions").groupby("cc_num").window(asofdb.sliding("1d")).size())
    try:
        got = db.training_set(spine, features=["py_card_n"], time="inference_ts")
        assert list(got.columns) == list(spine.columns) + ["py_card_n"]
        pd.testing.assert_frame_equal(got[spine.columns], spine)
        # The values equal the server's own ASOF join, row for row.
        arrow = db.training_set(spine.head(1000), features=["py_card_n"], time="inference_ts", as_arrow=True)
        assert isinstance(arrow, pa.Table) and arrow.column_names[-1] == "py_card_n"
        assert got["py_card_n"].head(1000).fillna(-1).tolist() == arrow.column("py_card_n").to_pandas().fillna(-1).tolist()
        local = asofdb.local.training_set(
            events,
            spine.head(20_000),
            [("py_card_n", db.table("transactions").groupby("cc_num").window(asofdb.sliding("1d")).size())],
            time="inference_ts",
        )
        assert got["py_card_n"].head(20_000).fillna(-1).tolist() == local["py_card_n"].fillna(-1).tolist()
    finally:
        db.drop_feature("py_card_n")


def test_edges_of_spines_and_definitions(db, data):
    events, spine = data
    tx = db.table("transactions")

    @asofdb.feature(window=asofdb.sliding("1h"), table="transactions")
    def py_edge(t):
        return t.groupby("cc_num")["amt"].max()

    # Called on a table, a declared feature keeps its window; == None and isin([None]) mean
    # missing values, as in pandas.
    assert "WINDOW SLIDING INTERVAL '1 hours'" in py_edge(tx).to_sql()
    assert (tx.amt == None).to_sql() == '("amt" IS NULL)'  # noqa: E711
    assert (tx.merchant.isin(["a", None])).to_sql("duckdb") == '(("merchant" IN (\'a\')) OR ("merchant" IS NULL))'
    db.create_feature(py_edge)
    try:
        # An empty spine, and times in nanoseconds (truncated to microseconds, as the server keeps).
        empty = db.training_set(spine.head(0), features=["py_edge"], time="inference_ts")
        assert list(empty.columns) == list(spine.columns) + ["py_edge"] and len(empty) == 0
        fine = spine.head(50).copy()
        fine["inference_ts"] = fine["inference_ts"].astype("datetime64[ns]") + pd.to_timedelta(7, unit="ns")
        fine.index = fine.index + 1000
        got = db.training_set(fine, features=["py_edge"], time="inference_ts")
        assert list(got.index) == list(fine.index) and (got["inference_ts"] == fine["inference_ts"]).all()
        local = asofdb.local.training_set(events, fine, [py_edge], time="inference_ts", event_time="ts")
        assert got["py_edge"].fillna(-1).tolist() == local["py_edge"].fillna(-1).tolist()
    finally:
        db.drop_feature(py_edge)


def test_values_that_come_back_out_of_spine_order_are_put_back_in_order():
    from asofdb.client import in_row_order

    values = pa.table({"__row": [2, 0, 3, 1], "v": [20, 0, 30, 10]})
    assert in_row_order(values).to_pydict() == {"__row": [0, 1, 2, 3], "v": [0, 10, 20, 30]}
    ordered = pa.table({"__row": [0, 1, 2], "v": [1, 2, 3]})
    assert in_row_order(ordered) is ordered
