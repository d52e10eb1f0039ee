#!/usr/bin/env python3
"""Computes "known at" ASOF values with DuckDB, independently of asofdb.

Usage: known_at_duckdb.py TX_CSV PROBES_CSV  -> CSV on stdout, one line per probe:
    id,n,max,sum,ips   (empty fields: no match)

A probe (id, cc_num, user_id, t, k) gets, over the events of its card (user for ips) whose
ingest time is at or before k: the count, max and sum of amounts in the sliding hour (t - 1h, t],
and the distinct ips of its user in the sliding day (t - 1d, t]; it matches when such a known
event exists at or before t (a LEFT join gives NULLs otherwise), as an ASOF join with an extra
`ingested_at <= k` filter would.
"""
import sys

import duckdb

con = duckdb.connect()
con.execute(
    "CREATE TABLE tx AS SELECT * FROM read_csv(?, header=true, columns={"
    "'tid':'BIGINT','cc_num':'BIGINT','user_id':'BIGINT','merchant':'VARCHAR','amt':'DOUBLE',"
    "'status':'VARCHAR','ip':'VARCHAR','ts':'TIMESTAMP','ingested_at':'TIMESTAMP'})",
    [sys.argv[1]],
)
con.execute(
    "CREATE TABLE probes AS SELECT * FROM read_csv(?, header=false, columns={"
    "'id':'BIGINT','cc_num':'BIGINT','user_id':'BIGINT','t':'TIMESTAMP','k':'TIMESTAMP'})",
    [sys.argv[2]],
)
rows = con.execute(
    """
    SELECT p.id,
      CASE WHEN EXISTS (SELECT 1 FROM tx WHERE tx.cc_num = p.cc_num AND tx.ts <= p.t AND tx.ingested_at <= p.k)
        THEN (SELECT count(*) FROM tx WHERE tx.cc_num = p.cc_num AND tx.ts > p.t - INTERVAL 1 HOUR
              AND tx.ts <= p.t AND tx.ingested_at <= p.k) END,
      (SELECT max(amt) FROM tx WHERE tx.cc_num = p.cc_num AND tx.ts > p.t - INTERVAL 1 HOUR
              AND tx.ts <= p.t AND tx.ingested_at <= p.k),
      (SELECT round(sum(amt), 6) FROM tx WHERE tx.cc_num = p.cc_num AND tx.ts > p.t - INTERVAL 1 HOUR
              AND tx.ts <= p.t AND tx.ingested_at <= p.k),
      CASE WHEN EXISTS (SELECT 1 FROM tx WHERE tx.user_id = p.user_id AND tx.ts <= p.t AND tx.ingested_at <= p.k)
        THEN (SELECT count(DISTINCT ip) FROM tx WHERE tx.user_id = p.user_id AND tx.ts > p.t - INTERVAL 1 DAY
              AND tx.ts <= p.t AND tx.ingested_at <= p.k) END
    FROM probes p ORDER BY p.id
    """
).fetchall()


def fmt(v, digits=None):
    if v is None:
        return ""
    return f"{v:.6f}" if digits else str(v)


for id_, n, mx, total, ips in rows:
    print(f"{id_},{fmt(n)},{fmt(mx, 6)},{fmt(total, 6)},{fmt(ips)}")
