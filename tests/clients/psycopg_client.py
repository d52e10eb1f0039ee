"""psycopg 3 against asofdb (issue #6): run by tests/it/clients.rs as `python3 psycopg_client.py PORT`.

The scenario every client test follows: connect, create a table, load rows with parameters
(executemany) and with COPY, create a feature, read it with a prepared statement, build a small
training set with ASOF JOIN, provoke an error and check its SQLSTATE, then keep using the same
connection. Any failed check raises, so the script exits non-zero and the Rust test fails.
"""
import datetime as dt
import sys

import psycopg
from psycopg import errors

T0 = dt.datetime(2025, 1, 1, 12, 0, 0)


def main(port: int):
    with psycopg.connect(f"host=127.0.0.1 port={port} user=psycopg dbname=asofdb", autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, status TEXT, ts TIMESTAMP NOT NULL) "
                    "WITH (event_time = 'ts')")
        # Parameters go through the extended protocol (server-side binding).
        cur.executemany("INSERT INTO tx VALUES (%s, %s, %s, %s)", [
            (1, 10.0, "ok", T0),
            (1, 30.0, "failed", T0 + dt.timedelta(minutes=10)),
            (2, 5.5, "ok", T0 + dt.timedelta(minutes=5)),
        ])
        with cur.copy("COPY tx (card, amt, status, ts) FROM STDIN") as copy:
            copy.write_row((2, 7.25, "failed", T0 + dt.timedelta(minutes=20)))
            copy.write_row((3, None, "ok", T0 + dt.timedelta(minutes=30)))
        cur.execute("SELECT count(*), sum(amt) FROM tx")
        assert cur.fetchone() == (5, 52.75), "rows loaded"

        cur.execute("CREATE FEATURE card_1h AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx "
                    "GROUP BY card WINDOW SLIDING INTERVAL '1 hour'")
        # prepare=True makes psycopg use a named prepared statement.
        row = cur.execute("SELECT n, max_amt, ts FROM card_1h WHERE card = %s", (1,), prepare=True).fetchone()
        assert row == (2, 30.0, T0 + dt.timedelta(minutes=30)), f"feature read {row}"
        row = cur.execute("SELECT n, max_amt FROM card_1h WHERE card = %s", (2,), prepare=True).fetchone()
        assert row == (2, 7.25), f"feature read {row}"

        cur.execute("CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT) WITH (event_time = 't')")
        cur.executemany("INSERT INTO spine VALUES (%s, %s, %s)", [
            (1, T0 + dt.timedelta(minutes=10), 1),   # strict: the event at exactly t is excluded
            (2, T0 + dt.timedelta(minutes=1), 0),    # before card 2's first event: NULLs
            (9, T0 + dt.timedelta(hours=1), 0),      # unknown card: NULLs
        ])
        training = cur.execute(
            "SELECT s.card, s.label, f.n, f.max_amt FROM spine s "
            "ASOF LEFT JOIN card_1h f ON s.card = f.card AND s.t > f.ts ORDER BY s.card").fetchall()
        assert training == [(1, 1, 1, 10.0), (2, 0, None, None), (9, 0, None, None)], f"training {training}"

        try:
            cur.execute("SELECT * FROM no_such_table")
            raise AssertionError("expected an error")
        except errors.UndefinedTable as e:
            assert e.sqlstate == "42P01", e.sqlstate
        try:
            cur.execute("SELECT %s::int", ("not a number",))
            raise AssertionError("expected an error")
        except psycopg.Error as e:
            assert e.sqlstate == "22P02", e.sqlstate
        # The same connection keeps working after the errors.
        assert cur.execute("SELECT count(*) FROM tx").fetchone() == (5,)

        # A transaction with an error is rolled back as a whole.
        conn.autocommit = False
        try:
            with conn.transaction():
                cur.execute("INSERT INTO tx VALUES (%s, %s, %s, %s)", (4, 1.0, "ok", T0))
                cur.execute("INSERT INTO tx VALUES (%s, %s, %s, %s)", (4, 1.0, "ok", None))
            raise AssertionError("expected a NOT NULL violation")
        except errors.NotNullViolation:
            pass
        conn.autocommit = True
        assert cur.execute("SELECT count(*) FROM tx WHERE card = 4").fetchone() == (0,)

        # Type introspection that psycopg does for adapters.
        info = psycopg.types.TypeInfo.fetch(conn, "int8")
        assert info is not None and info.oid == 20, info
    print("psycopg client: ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
