#!/usr/bin/env python3
"""Point-in-time answers computed by DuckDB its own way, for tests/it/differential_asof.rs.

Usage: asof_duckdb.py TX_CSV SPINE_CSV -> CSV on stdout, sorted: kind,spine tid,values...

- plain: DuckDB's own ASOF LEFT JOIN of the spine to the transactions (>=), reporting the
  matched event time (ties in time may pick different rows, so the row id is not compared);
- card_1h_strict / card_1h_incl: count and max(amt) over the card's events in [T-1h, T) or
  (T-1h, T], with NULL when the card has no event before (at) T, by a range join;
- user_ip_1d_strict: count(DISTINCT ip) over the user's events in [T-1d, T), by a range join.
"""
import sys

import duckdb

con = duckdb.connect()
tx_cols = ("{'tid':'BIGINT','cc_num':'BIGINT','user_id':'BIGINT','merchant':'VARCHAR','amt':'DOUBLE',"
           "'status':'VARCHAR','ip':'VARCHAR','ts':'TIMESTAMP'}")
spine_cols = "{'tid':'BIGINT','inference_ts':'TIMESTAMP','cc_num':'BIGINT','user_id':'BIGINT','is_fraud':'INTEGER'}"
con.execute(f"CREATE TABLE tx AS SELECT * FROM read_csv(?, header=true, columns={tx_cols})", [sys.argv[1]])
con.execute(f"CREATE TABLE spine AS SELECT * FROM read_csv(?, header=true, columns={spine_cols})", [sys.argv[2]])

out = []
for tid, ts in con.execute(
    "SELECT s.tid, t.ts FROM spine s ASOF LEFT JOIN tx t ON s.cc_num = t.cc_num AND s.inference_ts >= t.ts"
).fetchall():
    out.append(f"plain,{tid},{'' if ts is None else ts.strftime('%Y-%m-%d %H:%M:%S.%f')}")

for name, lower, upper, exists in [
    ("card_1h_strict", ">=", "<", "<"),
    ("card_1h_incl", ">", "<=", "<="),
]:
    sql = f"""
        SELECT s.tid,
               CASE WHEN EXISTS (SELECT 1 FROM tx e WHERE e.cc_num = s.cc_num AND e.ts {exists} s.inference_ts)
                    THEN count(t.tid) END,
               max(t.amt)
        FROM spine s
        LEFT JOIN tx t ON t.cc_num = s.cc_num
             AND t.ts {lower} s.inference_ts - INTERVAL 1 HOUR AND t.ts {upper} s.inference_ts
        GROUP BY s.tid, s.cc_num, s.inference_ts"""
    for tid, n, mx in con.execute(sql).fetchall():
        out.append(f"{name},{tid},{'' if n is None else n},{'' if mx is None else f'{mx:.6f}'}")
# A distinct count over a day by user, strict: [T-1d, T).
sql = """
    SELECT s.tid,
           CASE WHEN EXISTS (SELECT 1 FROM tx e WHERE e.user_id = s.user_id AND e.ts < s.inference_ts)
                THEN count(DISTINCT t.ip) END
    FROM spine s
    LEFT JOIN tx t ON t.user_id = s.user_id
         AND t.ts >= s.inference_ts - INTERVAL 1 DAY AND t.ts < s.inference_ts
    GROUP BY s.tid, s.user_id, s.inference_ts"""
for tid, n in con.execute(sql).fetchall():
    out.append(f"user_ip_1d_strict,{tid},{'' if n is None else n}")
print("\n".join(sorted(out)))
