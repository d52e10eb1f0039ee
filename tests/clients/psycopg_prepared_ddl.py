"""psycopg 3 at its defaults across DDL (issue #30): run by tests/it/clients.rs as
`python3 psycopg_prepared_ddl.py PORT`.

psycopg prepares a statement on the server after it has run 5 times (prepare_threshold), so a
query an application runs in a loop becomes a prepared statement without being asked. After
DROP FEATURE, DROP + CREATE, a changed definition, and DROP TABLE ... CASCADE, that statement
must read what its names denote now (or fail with PostgreSQL's error), never the old values.
psycopg itself forgets its prepared statements after a command whose tag starts with DROP, so
a changed result type after DROP + CREATE reaches it as a new statement; the 0A000 of a
changed result type is checked with tokio-postgres in tests/it/wire.rs.
"""
import datetime as dt
import sys

import psycopg
from psycopg import errors

T0 = dt.datetime(2025, 1, 1, 12, 0, 0)
TABLE = ("CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) "
         "WITH (event_time = 'ts')")
FEATURE = "CREATE FEATURE f AS SELECT card, count(*) AS n FROM tx GROUP BY card"
POINT = "SELECT n FROM f WHERE card = %s"
ASOF = "SELECT s.card, f.n FROM spine s ASOF LEFT JOIN f ON s.card = f.card AND s.t >= f.ts WHERE s.card = %s"
SCAN = "SELECT count(*) FROM tx WHERE card = %s"


def insert(cur, minutes):
    cur.execute("INSERT INTO tx VALUES (%s, %s, %s)", (1, 1.0, T0 + dt.timedelta(minutes=minutes)))


def reads(cur):
    """Runs each query past psycopg's threshold, so the last runs use its prepared statement."""
    out = None
    for _ in range(7):
        point = cur.execute(POINT, (1,)).fetchone()
        asof = cur.execute(ASOF, (1,)).fetchone()
        scan = cur.execute(SCAN, (1,)).fetchone()
        row = (point[0], asof[1], scan[0])
        assert out is None or row == out, f"the same query changed its answer: {out} then {row}"
        out = row
    return out


def expect_error(cur, sql, params, sqlstate):
    try:
        cur.execute(sql, params)
    except psycopg.Error as e:
        assert e.sqlstate == sqlstate, f"{sql}: {e.sqlstate} {e}"
        return str(e)
    raise AssertionError(f"{sql}: expected {sqlstate}")


def main(port: int):
    with psycopg.connect(f"host=127.0.0.1 port={port} user=psycopg dbname=asofdb", autocommit=True) as conn:
        assert conn.prepare_threshold == 5, "psycopg's default"
        cur = conn.cursor()
        cur.execute(TABLE)
        cur.execute("CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL)")
        cur.execute("INSERT INTO spine VALUES (1, %s)", (T0 + dt.timedelta(days=1),))
        insert(cur, 0)
        cur.execute(FEATURE)
        assert reads(cur) == (1, 1, 1)

        cur.execute("DROP FEATURE f")
        expect_error(cur, POINT, (1,), "42P01")
        expect_error(cur, ASOF, (1,), "42P01")
        cur.execute(FEATURE)
        insert(cur, 10)
        assert reads(cur) == (2, 2, 2), "after DROP + CREATE"
        insert(cur, 20)
        assert reads(cur) == (3, 3, 3), "after another INSERT"

        cur.execute("DROP FEATURE f")
        cur.execute("CREATE FEATURE f AS SELECT card, sum(amt) AS n FROM tx GROUP BY card")
        for _ in range(7):
            assert cur.execute(POINT, (1,)).fetchone() == (3.0,), "the new definition's value"

        cur.execute("DROP TABLE tx CASCADE")
        expect_error(cur, SCAN, (1,), "42P01")
        cur.execute(TABLE)
        cur.execute(FEATURE)
        for minutes in (0, 1, 2, 3):
            insert(cur, minutes)
        assert reads(cur) == (4, 4, 4), "after DROP TABLE CASCADE and a new table"
        # The same queries unprepared agree.
        with conn.cursor() as fresh:
            assert fresh.execute(POINT, (1,), prepare=False).fetchone() == (4,)
    print("psycopg_prepared_ddl: ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
