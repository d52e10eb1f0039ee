"""SQLAlchemy 2 (psycopg 3 driver) and pandas against asofdb (issue #6): run by tests/it/clients.rs as
`python3 sqlalchemy_client.py PORT`.

Covers the inspector's introspection (table names, columns and their types), parameterised
inserts through the ORM-free Core API, a feature read and an ASOF JOIN training set loaded with
`pandas.read_sql`, and an error's SQLSTATE, on one connection.
"""
import datetime as dt
import sys

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc

T0 = dt.datetime(2025, 1, 1, 12, 0, 0)


def main(port: int):
    engine = sa.create_engine(f"postgresql+psycopg://sqlalchemy@127.0.0.1:{port}/asofdb",
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, status TEXT, "
                             "ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')"))
        conn.execute(sa.text("INSERT INTO tx VALUES (:card, :amt, :status, :ts)"), [
            {"card": 1, "amt": 10.0, "status": "ok", "ts": T0},
            {"card": 1, "amt": 30.0, "status": "failed", "ts": T0 + dt.timedelta(minutes=10)},
            {"card": 2, "amt": 5.5, "status": "ok", "ts": T0 + dt.timedelta(minutes=5)},
        ])
        conn.execute(sa.text("CREATE FEATURE card_1h AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx "
                             "GROUP BY card WINDOW SLIDING INTERVAL '1 hour'"))

        inspector = sa.inspect(conn)
        tables = inspector.get_table_names()
        assert "tx" in tables, tables
        columns = {c["name"]: c for c in inspector.get_columns("tx")}
        assert list(columns) == ["card", "amt", "status", "ts"], list(columns)
        assert isinstance(columns["card"]["type"], sa.BigInteger), columns["card"]
        assert isinstance(columns["amt"]["type"], sa.Float), columns["amt"]
        assert isinstance(columns["ts"]["type"], sa.TIMESTAMP), columns["ts"]
        assert columns["ts"]["nullable"] is False and columns["card"]["nullable"] is True
        # Features are views.
        views = inspector.get_view_names()
        assert "card_1h" in views, views

        frame = pd.read_sql(sa.text("SELECT card, n, max_amt FROM card_1h WHERE card = :card"), conn,
                            params={"card": 1})
        assert frame.to_dict("records") == [{"card": 1, "n": 2, "max_amt": 30.0}], frame

        conn.execute(sa.text("CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT) "
                             "WITH (event_time = 't')"))
        conn.execute(sa.text("INSERT INTO spine VALUES (:card, :t, :label)"), [
            {"card": 1, "t": T0 + dt.timedelta(minutes=10), "label": 1},
            {"card": 2, "t": T0 + dt.timedelta(minutes=1), "label": 0},
        ])
        training = pd.read_sql(sa.text(
            "SELECT s.card, s.label, f.n, f.max_amt FROM spine s "
            "ASOF LEFT JOIN card_1h f ON s.card = f.card AND s.t > f.ts ORDER BY s.card"), conn)
        assert list(training.columns) == ["card", "label", "n", "max_amt"], training.columns
        assert training["n"].tolist()[0] == 1 and pd.isna(training["n"].tolist()[1]), training
        assert training["max_amt"].tolist()[0] == 10.0, training

        try:
            conn.execute(sa.text("SELECT nope FROM tx"))
            raise AssertionError("expected an error")
        except exc.ProgrammingError as e:
            assert e.orig.sqlstate == "42703", e.orig.sqlstate
        assert conn.execute(sa.text("SELECT count(*) FROM tx")).scalar() == 3
    print("sqlalchemy client: ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
