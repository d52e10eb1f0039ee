"""The Ibis PostgreSQL backend at its defaults (issue #22): `python3 ibis_client.py PORT
[--postgres]`. Lists tables, reads a table's schema, loads the spine with `create_table`, builds
the training set with raw SQL into a table made with `create_table(schema=...)`, reads it as
pandas, provokes an error and goes on. Not here, as asofdb lacks what they use
(docs/clients.md): `con.sql(query)` learns a query's columns through a TEMPORARY VIEW, and
`to_pyarrow()` reads through a server-side cursor (DECLARE ... CURSOR, FETCH).
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

    try:
        con.raw_sql("SELECT nope FROM tx")
        raise AssertionError("expected an error")
    except Exception as e:
        assert "nope" in str(e), e
    assert con.table("tx").count().execute() == len(fraud.EVENTS)
    print(f"ibis client ({target.name}): ok")


if __name__ == "__main__":
    main()
