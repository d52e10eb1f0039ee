"""The Ibis PostgreSQL backend at its defaults (issue #22): `python3 ibis_client.py PORT
[--postgres]`. Lists tables, reads a table's schema, loads the spine with `create_table`, builds
the training set with raw SQL into a table made with `create_table(schema=...)`, reads it as
pandas; reads the training query itself with `con.sql(query)` (a TEMPORARY VIEW tells Ibis its
columns) into Arrow with `to_pyarrow()` (a server-side cursor: DECLARE ... CURSOR, FETCH);
provokes an error and goes on.
"""
import ibis
import pandas as pd

import fraud


def main():
    target = fraud.target()
    con = ibis.postgres.connect(host="127.0.0.1", port=target.port, user=target.user, database=target.database)
    con.raw_sql(target.create_events()).close()
    for card, amount, ts in fraud.EVENTS:
        amount_sql = "NULL" if amount is None else repr(amount)
        con.raw_sql(f"INSERT INTO tx VALUES ({card}, {amount_sql}, '{ts.isoformat(sep=' ')}')").close()
    con.raw_sql(target.create_feature()).close()

    assert "tx" in con.list_tables(), con.list_tables()
    tx = con.table("tx")
    assert list(tx.schema().names) == ["card", "amount", "ts"], tx.schema()
    assert tx.schema()["ts"].is_timestamp() and tx.schema()["card"].is_integer(), tx.schema()
    assert tx.count().execute() == len(fraud.EVENTS)

    spine = pd.DataFrame(fraud.SPINE, columns=["card", "t", "label"])
    con.create_table("spine", spine)
    assert "spine" in con.list_tables()

    con.create_table("training", schema=ibis.schema(
        {"card": "int64", "t": "timestamp", "label": "int64", "max_amount": "float64"}))
    con.raw_sql(f"INSERT INTO training {target.training_set()}").close()
    training = con.table("training").order_by(["card", "t"])
    frame = training.to_pandas()
    assert str(frame["t"].dtype).startswith("datetime64"), frame.dtypes
    fraud.same_rows(frame.itertuples(index=False), "ibis to_pandas")
    assert frame["max_amount"].isna().any() and str(frame["card"].dtype) == "int64", frame.dtypes

    query = con.sql(target.training_set())
    assert list(query.schema().names) == ["card", "t", "label", "max_amount"], query.schema()
    assert query.schema()["t"].is_timestamp() and query.schema()["max_amount"].is_floating(), query.schema()
    table = query.order_by(["card", "t"]).to_pyarrow()
    fraud.same_rows(zip(*(table.column(i).to_pylist() for i in range(table.num_columns))), "ibis to_pyarrow")
    batches = list(query.to_pyarrow_batches(chunk_size=2))
    assert sum(b.num_rows for b in batches) == len(frame) and len(batches) > 1, [b.num_rows for b in batches]

    try:
        con.raw_sql("SELECT nope FROM tx")
        raise AssertionError("expected an error")
    except Exception as e:
        assert "nope" in str(e), e
    assert con.table("tx").count().execute() == len(fraud.EVENTS)
    print(f"ibis client ({target.name}): ok")


if __name__ == "__main__":
    main()
