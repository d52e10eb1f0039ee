"""SQLAlchemy 2 with psycopg 3 at their defaults (no isolation_level: every statement runs in a
transaction, and pandas' `to_sql` uses savepoints), and psycopg's nested transactions
(issue #22): `python3 sqlalchemy_defaults.py PORT [--postgres]`.
"""
import pandas as pd
import psycopg
import sqlalchemy as sa
from sqlalchemy import exc

import fraud


def main():
    target = fraud.target()
    engine = sa.create_engine(target.uri("postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text(target.create_events()))
        conn.execute(sa.text("INSERT INTO tx VALUES (:card, :amount, :ts)"),
                     [dict(card=c, amount=a, ts=t) for c, a, t in fraud.EVENTS])
    with engine.begin() as conn:
        conn.execute(sa.text(target.create_feature()))

    inspector = sa.inspect(engine)
    assert "tx" in inspector.get_table_names(), inspector.get_table_names()
    assert [c["name"] for c in inspector.get_columns("tx")] == ["card", "amount", "ts"]

    spine = pd.DataFrame(fraud.SPINE, columns=["card", "t", "label"])
    spine.to_sql("spine", engine, index=False)
    training = pd.read_sql(sa.text(target.training_set()), engine)
    assert str(training["t"].dtype).startswith("datetime64"), training.dtypes
    fraud.same_rows(training.itertuples(index=False), "pandas read_sql")

    # A savepoint rolled back keeps the writes before it.
    with engine.connect() as conn:
        with conn.begin():
            conn.execute(sa.text("INSERT INTO tx VALUES (9, 1.0, '2025-01-01 13:00:00')"))
            nested = conn.begin_nested()
            conn.execute(sa.text("INSERT INTO tx VALUES (9, 2.0, '2025-01-01 13:01:00')"))
            assert conn.execute(sa.text("SELECT count(*) FROM tx WHERE card = 9")).scalar() == 2
            nested.rollback()
            assert conn.execute(sa.text("SELECT count(*) FROM tx WHERE card = 9")).scalar() == 1
        # An error inside a savepoint, rolled back to it, leaves the transaction usable.
        with conn.begin():
            try:
                with conn.begin_nested():
                    conn.execute(sa.text("SELECT nope FROM tx"))
                raise AssertionError("expected an error")
            except exc.ProgrammingError as e:
                assert e.orig.sqlstate == "42703", e.orig.sqlstate
            conn.execute(sa.text("INSERT INTO tx VALUES (9, 3.0, '2025-01-01 13:02:00')"))
    with engine.connect() as conn:
        amounts = conn.execute(sa.text("SELECT amount FROM tx WHERE card = 9 ORDER BY amount")).scalars().all()
        assert amounts == [1.0, 3.0], amounts

    # psycopg 3's nested transaction blocks are savepoints.
    with psycopg.connect(target.uri()) as conn:
        with conn.transaction():
            conn.execute("INSERT INTO tx VALUES (8, 1.0, '2025-01-01 13:00:00')")
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO tx VALUES (8, 2.0, '2025-01-01 13:01:00')")
                    conn.execute("SELECT 1/0")
            except psycopg.errors.DivisionByZero:
                pass
            count = conn.execute("SELECT count(*) FROM tx WHERE card = 8").fetchone()[0]
            assert count == 1, count
    print(f"sqlalchemy defaults ({target.name}): ok")


if __name__ == "__main__":
    main()
