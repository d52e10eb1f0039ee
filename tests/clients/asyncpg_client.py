"""asyncpg against asofdb (issue #6): run by tests/it/clients.rs as `python3 asyncpg_client.py PORT`.

asyncpg speaks only the extended protocol with binary formats: every statement is prepared,
described (ParameterDescription + RowDescription) and its types introspected from pg_type.
The scenario is the one every client test follows (see psycopg_client.py).
"""
import asyncio
import datetime as dt
import sys

import asyncpg

T0 = dt.datetime(2025, 1, 1, 12, 0, 0)


async def main(port: int):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="asyncpg", database="asofdb")
    await conn.execute("CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, status TEXT, ts TIMESTAMP NOT NULL) "
                       "WITH (event_time = 'ts')")
    await conn.executemany("INSERT INTO tx VALUES ($1, $2, $3, $4)", [
        (1, 10.0, "ok", T0),
        (1, 30.0, "failed", T0 + dt.timedelta(minutes=10)),
        (2, 5.5, "ok", T0 + dt.timedelta(minutes=5)),
    ])
    result = await conn.copy_records_to_table("tx", records=[
        (2, 7.25, "failed", T0 + dt.timedelta(minutes=20)),
        (3, None, "ok", T0 + dt.timedelta(minutes=30)),
    ], columns=["card", "amt", "status", "ts"])
    assert result == "COPY 2", result
    row = await conn.fetchrow("SELECT count(*) AS n, sum(amt) AS total FROM tx")
    assert (row["n"], row["total"]) == (5, 52.75), row

    await conn.execute("CREATE FEATURE card_1h AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx "
                       "GROUP BY card WINDOW SLIDING INTERVAL '1 hour'")
    read = await conn.prepare("SELECT n, max_amt, ts FROM card_1h WHERE card = $1")
    assert [a.name for a in read.get_attributes()] == ["n", "max_amt", "ts"]
    row = await read.fetchrow(1)
    assert tuple(row) == (2, 30.0, T0 + dt.timedelta(minutes=30)), row
    row = await read.fetchrow(2)
    assert tuple(row)[:2] == (2, 7.25), row
    assert await read.fetchrow(42) is None

    await conn.execute("CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT) WITH (event_time = 't')")
    await conn.executemany("INSERT INTO spine VALUES ($1, $2, $3)", [
        (1, T0 + dt.timedelta(minutes=10), 1),
        (2, T0 + dt.timedelta(minutes=1), 0),
        (9, T0 + dt.timedelta(hours=1), 0),
    ])
    rows = await conn.fetch("SELECT s.card, s.label, f.n, f.max_amt FROM spine s "
                            "ASOF LEFT JOIN card_1h f ON s.card = f.card AND s.t > f.ts ORDER BY s.card")
    assert [tuple(r) for r in rows] == [(1, 1, 1, 10.0), (2, 0, None, None), (9, 0, None, None)], rows
    # A time parameter in binary format (int64 microseconds since 2000-01-01).
    rows = await conn.fetch("SELECT card FROM tx WHERE ts >= $1 ORDER BY card, ts", T0 + dt.timedelta(minutes=20))
    assert [r["card"] for r in rows] == [2, 3], rows

    try:
        await conn.execute("SELECT * FROM no_such_table")
        raise AssertionError("expected an error")
    except asyncpg.exceptions.UndefinedTableError as e:
        assert e.sqlstate == "42P01", e.sqlstate
    try:
        await conn.execute("INSERT INTO tx VALUES (4, 1.0, 'ok', NULL)")
        raise AssertionError("expected an error")
    except asyncpg.exceptions.NotNullViolationError as e:
        assert e.sqlstate == "23502", e.sqlstate
    # The same connection keeps working after the errors.
    assert await conn.fetchval("SELECT count(*) FROM tx") == 5
    await conn.close()
    print("asyncpg client: ok")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
