#!/usr/bin/env python3
"""DuckDB's answers to ASOF JOIN queries, for tests/it/differential_asof.rs.

Usage: asof_forms_duckdb.py SETUP_SQL_FILE QUERIES_FILE -> one JSON line per query on stdout:
the rows, each a list of values as text (NULL as "NULL"), or {"error": message}.
"""
import json
import sys

import duckdb


def text(value):
    if value is None:
        return "NULL"
    if isinstance(value, float):
        # As PostgreSQL prints a double: no ".0" on whole numbers.
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
for query in open(sys.argv[2]).read().split("\n;\n"):
    if not query.strip():
        continue
    try:
        rows = [[text(v) for v in row] for row in con.execute(query).fetchall()]
        print(json.dumps(rows))
    except duckdb.Error as e:
        print(json.dumps({"error": str(e)}))
