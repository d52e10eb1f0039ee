"""The ADBC PostgreSQL driver (adbc_driver_postgresql), and polars through it, at their defaults
(issue #22): `python3 adbc_client.py PORT [--postgres]`.

Lists tables and columns (`adbc_get_objects`, `adbc_get_table_schema`), loads the spine with
`adbc_ingest`, reads the training set as an Arrow table (binary COPY underneath) and through
`polars.read_database_uri(engine="adbc")`, provokes an error and goes on.
"""
import adbc_driver_postgresql.dbapi as adbc
import polars as pl
import pyarrow as pa

import fraud


def main():
    target = fraud.target()
    with adbc.connect(target.uri()) as conn:
        with conn.cursor() as cur:
            cur.execute(target.create_events())
            cur.executemany("INSERT INTO tx VALUES ($1, $2, $3)", fraud.EVENTS)
            cur.execute(target.create_feature())
        conn.commit()

        objects = conn.adbc_get_objects(depth="columns", table_name_filter="tx").read_all().to_pylist()
        columns = [c["column_name"] for catalog in objects for schema in catalog["catalog_db_schemas"]
                   for table in schema["db_schema_tables"] if table["table_name"] == "tx"
                   for c in table["table_columns"]]
        assert columns == ["card", "amount", "ts"], objects
        schema = conn.adbc_get_table_schema("tx")
        assert schema.field("card").type == pa.int64() and schema.field("amount").type == pa.float64(), schema
        assert pa.types.is_timestamp(schema.field("ts").type), schema

        spine = pa.table({
            "card": pa.array([r[0] for r in fraud.SPINE], pa.int64()),
            "t": pa.array([r[1] for r in fraud.SPINE], pa.timestamp("us")),
            "label": pa.array([r[2] for r in fraud.SPINE], pa.int32()),
        })
        with conn.cursor() as cur:
            cur.adbc_ingest("spine", spine, mode="create")
        conn.commit()

        with conn.cursor() as cur:
            cur.execute(target.training_set())
            training = cur.fetch_arrow_table()
        assert pa.types.is_timestamp(training.schema.field("t").type), training.schema
        assert training.schema.field("max_amount").type == pa.float64(), training.schema
        fraud.same_rows(zip(*[training.column(i).to_pylist() for i in range(4)]), "adbc fetch_arrow_table")

        with conn.cursor() as cur:
            try:
                cur.execute("SELECT nope FROM tx")
                raise AssertionError("expected an error")
            except adbc.ProgrammingError as e:
                assert e.sqlstate == "42703", (e.sqlstate, e)
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tx")
            assert cur.fetchone()[0] == len(fraud.EVENTS)

    frame = pl.read_database_uri(target.training_set(), target.uri(), engine="adbc")
    assert frame.schema["t"] == pl.Datetime("us"), frame.schema
    fraud.same_rows(frame.rows(), "polars read_database_uri(engine=adbc)")
    print(f"adbc client ({target.name}): ok")


if __name__ == "__main__":
    main()
