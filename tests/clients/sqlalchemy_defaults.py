"""SQLAlchemy 2 with psycopg 3 at their defaults (no isolation_level: every statement runs in a
transaction, and pandas' `to_sql` uses savepoints), and psycopg's nested transactions
(issue #22), and reading a result a few rows at a time through a server-side cursor
(SQLAlchemy's `stream_results`, psycopg's named cursors): `python3 sqlalchemy_defaults.py PORT
[--postgres]`.
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
    # stream_results reads through a named cursor (DECLARE ... CURSOR, FETCH FORWARD n).
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, max_row_buffer=2).execute(
            sa.text(target.training_set()))
        assert list(result.keys()) == ["card", "t", "label", "max_amount"], result.keys()
        streamed = [tuple(row) for row in result]
        fraud.same_rows(streamed, "sqlalchemy stream_results")
        for chunk in pd.read_sql(sa.text(target.training_set()), conn.execution_options(stream_results=True),
                                 chunksize=3):
            assert 0 < len(chunk) <= 3, chunk

    # psycopg's named cursors: fetchmany, a parameter, binary rows, and WITH HOLD past COMMIT.
    with psycopg.connect(target.uri()) as conn:
        with conn.cursor(name="events") as cur:
            cur.execute("SELECT card, amount, ts FROM tx WHERE card = %s ORDER BY ts", (1,))
            assert [d.name for d in cur.description] == ["card", "amount", "ts"], cur.description
            first = cur.fetchmany(2)
            rest = cur.fetchall()
            expected = [e for e in fraud.EVENTS if e[0] == 1]
            assert len(first) == 2 and len(first) + len(rest) == len(expected), (first, rest)
        with conn.cursor(name="binary_rows", binary=True) as cur:
            cur.execute("SELECT card, ts FROM tx ORDER BY ts, card")
            assert len(cur.fetchall()) == conn.execute("SELECT count(*) FROM tx").fetchone()[0]
        conn.commit()
        with conn.cursor(name="held", withhold=True) as cur:
            cur.execute("SELECT card FROM tx ORDER BY card")
            conn.commit()
            assert cur.fetchone() is not None
    print(f"sqlalchemy defaults ({target.name}): ok")


if __name__ == "__main__":
    main()
