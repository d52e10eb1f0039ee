"""psqlODBC (Debian's odbc-postgresql, the Unicode driver) through pyodbc, in manual-commit
mode, the ODBC default (issue #22): `python3 odbc_client.py PORT [--postgres]`. Catalog calls
(SQLTables, SQLColumns, SQLPrimaryKeys, SQLStatistics), parameterised INSERT and SELECT inside
a transaction, the training set, an error that rolls back, and the connection going on.
"""
import pyodbc

import fraud


def main():
    target = fraud.target()
    conn = pyodbc.connect(f"DRIVER={{PostgreSQL Unicode}};SERVER=127.0.0.1;PORT={target.port};"
                          f"DATABASE={target.database};UID={target.user}")
    cur = conn.cursor()
    cur.execute(target.create_events())
    cur.executemany("INSERT INTO tx VALUES (?, ?, ?)", fraud.EVENTS)
    conn.commit()
    cur.execute(target.create_feature())
    spine = "CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT)"
    cur.execute(spine if target.postgres else spine + " WITH (event_time = 't')")
    conn.commit()
    cur.executemany("INSERT INTO spine VALUES (?, ?, ?)", fraud.SPINE)
    cur.execute("SELECT count(*) FROM spine WHERE card = ?", 1)
    assert cur.fetchone()[0] == 3
    conn.commit()

    tables = [row.table_name for row in cur.tables(tableType="TABLE")]
    assert "tx" in tables and "spine" in tables, tables
    columns = [(row.column_name, row.type_name) for row in cur.columns(table="tx")]
    assert [c[0] for c in columns] == ["card", "amount", "ts"], columns
    assert list(cur.primaryKeys(table="tx")) == [], "event tables have no primary key"
    cur.statistics(table="tx").fetchall()

    cur.execute(target.training_set())
    fraud.same_rows([tuple(row) for row in cur.fetchall()], "pyodbc fetchall")
    conn.commit()

    try:
        cur.execute("SELECT nope FROM tx")
        raise AssertionError("expected an error")
    except pyodbc.Error as e:
        assert "42703" in str(e) or "nope" in str(e), e
    conn.rollback()
    cur.execute("SELECT count(*) FROM tx WHERE card = ?", 1)
    assert cur.fetchone()[0] == 2
    conn.commit()
    conn.close()
    print(f"odbc client ({target.name}): ok")


if __name__ == "__main__":
    main()
