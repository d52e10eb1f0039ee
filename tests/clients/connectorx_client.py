"""ConnectorX, and polars through it (polars.read_database_uri's default engine), at their
defaults (issue #22): `python3 connectorx_client.py PORT [--postgres]`. ConnectorX reads with
binary COPY TO STDOUT. The tables are created with psycopg, as ConnectorX only reads.
"""
import connectorx as cx
import polars as pl
import psycopg

import fraud


def main():
    target = fraud.target()
    with psycopg.connect(target.uri(), autocommit=True) as conn:
        conn.execute(target.create_events())
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO tx VALUES (%s, %s, %s)", fraud.EVENTS)
        conn.execute(target.create_feature())
        spine = "CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT)"
        conn.execute(spine if target.postgres else spine + " WITH (event_time = 't')")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO spine VALUES (%s, %s, %s)", fraud.SPINE)

    frame = pl.read_database_uri(target.training_set(), target.uri())
    assert frame.schema["t"] == pl.Datetime("us"), frame.schema
    assert frame.schema["max_amount"] == pl.Float64, frame.schema
    fraud.same_rows(frame.rows(), "polars read_database_uri (connectorx)")

    table = cx.read_sql(target.uri(), target.training_set(), return_type="arrow")
    fraud.same_rows(zip(*[table.column(i).to_pylist() for i in range(4)]), "connectorx arrow")

    pandas = cx.read_sql(target.uri(), "SELECT card, amount, ts FROM tx ORDER BY ts")
    assert len(pandas) == len(fraud.EVENTS) and str(pandas["ts"].dtype).startswith("datetime64"), pandas.dtypes
    assert pandas["amount"].isna().sum() == 1, pandas

    try:
        cx.read_sql(target.uri(), "SELECT nope FROM tx")
        raise AssertionError("expected an error")
    except Exception as e:  # ConnectorX raises RuntimeError with the server's message
        assert "nope" in str(e), e
    assert cx.read_sql(target.uri(), "SELECT count(*) AS n FROM tx")["n"][0] == len(fraud.EVENTS)
    print(f"connectorx client ({target.name}): ok")


if __name__ == "__main__":
    main()
