#!/usr/bin/env python3
"""Computes feature values at the watermark with DuckDB, independently of asofdb.

Usage: features_duckdb.py TX_CSV  -> CSV on stdout: feature,key,value columns...

Each feature is computed the way a DuckDB user would write it: a filter on the window's
bounds relative to the table's watermark (max event time), grouped by key, with every key
that has at least one qualifying event at or before the watermark present (count 0 / NULL
over an empty window).
"""
import sys

import duckdb

con = duckdb.connect()
con.execute(
    "CREATE TABLE tx AS SELECT *, row_number() OVER () AS rn FROM read_csv(?, header=true, columns={"
    "'tid':'BIGINT','cc_num':'BIGINT','user_id':'BIGINT','merchant':'VARCHAR','amt':'DOUBLE',"
    "'status':'VARCHAR','ip':'VARCHAR','ts':'TIMESTAMP'})",
    [sys.argv[1]],
)
wm = "(SELECT max(ts) FROM tx)"

queries = {
    # SLIDING 1 hour: (wm - 1h, wm]
    "card_1h": f"""
        SELECT k.cc_num, count(t.tid), max(t.amt), round(sum(t.amt), 6)
        FROM (SELECT DISTINCT cc_num FROM tx) k
        LEFT JOIN tx t ON t.cc_num = k.cc_num AND t.ts > {wm} - INTERVAL 1 HOUR AND t.ts <= {wm}
        GROUP BY k.cc_num""",
    # SLIDING 30 days, count(DISTINCT ip) by user
    "user_ip_30d": f"""
        SELECT k.user_id, count(DISTINCT t.ip), NULL, NULL
        FROM (SELECT DISTINCT user_id FROM tx) k
        LEFT JOIN tx t ON t.user_id = k.user_id AND t.ts > {wm} - INTERVAL 30 DAY AND t.ts <= {wm}
        GROUP BY k.user_id""",
    # WHERE status = 'failed', SLIDING 1 day: only keys with a failed event appear
    "failed_1d": f"""
        SELECT k.cc_num, count(t.tid), NULL, NULL
        FROM (SELECT DISTINCT cc_num FROM tx WHERE status = 'failed') k
        LEFT JOIN tx t ON t.cc_num = k.cc_num AND t.status = 'failed'
             AND t.ts > {wm} - INTERVAL 1 DAY AND t.ts <= {wm}
        GROUP BY k.cc_num""",
    # TUMBLING 1 day: [floor(wm, 1 day), wm], avg and stddev
    "card_today": f"""
        SELECT k.cc_num, count(t.tid), round(avg(t.amt), 6), round(stddev_samp(t.amt), 6)
        FROM (SELECT DISTINCT cc_num FROM tx) k
        LEFT JOIN tx t ON t.cc_num = k.cc_num AND t.ts >= date_trunc('day', {wm}) AND t.ts <= {wm}
        GROUP BY k.cc_num""",
}
# The ML aggregates (SLIDING 1 day, by card), each the DuckDB way: last_k as a list ordered
# by time then arrival (file order), max_k as a list ordered by value, decayed_sum as a sum of
# amt * 0.5^(age / half-life), approx_percentile against the exact quantile_cont: equal where
# the window holds fewer than 256 values (asofdb's is exact there), else within the documented
# bound, written "range:lo:hi" (the exact quantiles at q - 0.01 and q + 0.01).
ml = f"""
    SELECT k.cc_num,
           list(t.amt ORDER BY t.ts DESC, t.rn DESC) FILTER (WHERE t.amt IS NOT NULL),
           list(t.amt ORDER BY t.amt DESC) FILTER (WHERE t.amt IS NOT NULL),
           sum(t.amt * pow(0.5, (epoch_us({wm}) - epoch_us(t.ts)) / 3600e6)),
           quantile_cont(t.amt, 0.5), quantile_cont(t.amt, 0.49), quantile_cont(t.amt, 0.51), count(t.amt)
    FROM (SELECT DISTINCT cc_num FROM tx) k
    LEFT JOIN tx t ON t.cc_num = k.cc_num AND t.ts > {wm} - INTERVAL 1 DAY AND t.ts <= {wm}
    GROUP BY k.cc_num"""


def fixed(v):
    return "" if v is None else f"{float(v):.6f}"


def first(values, k):
    return "" if not values else "{" + ";".join(fixed(v) for v in values[:k]) + "}"


out = []
for cc_num, last, top, dsum, p50, p49, p51, n in con.execute(ml).fetchall():
    rounded = None if dsum is None else round(dsum, 6)
    p = fixed(p50) if n < 256 else f"range:{p49}:{p51}"
    out.append(",".join(["card_ml", str(cc_num), first(last, 3), first(top, 3), fixed(rounded), p]))
for name, sql in queries.items():
    for row in con.execute(sql).fetchall():
        out.append(",".join([name] + ["" if v is None else f"{float(v):.6f}" if isinstance(v, float) else str(v) for v in row]))
print("\n".join(sorted(out)))
