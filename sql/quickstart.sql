-- A small fraud example: an event table, some card transactions, a few queries.
-- Run it with:  psql -h 127.0.0.1 -p 5433 -f sql/quickstart.sql

CREATE TABLE IF NOT EXISTS transactions (
    tid       BIGINT,
    cc_num    BIGINT,
    user_id   BIGINT,
    merchant  TEXT,
    amt       DOUBLE PRECISION,
    status    TEXT,
    ip        TEXT,
    ts        TIMESTAMP NOT NULL
) WITH (event_time = 'ts', hot_retention = '1 day');

-- Rows may arrive in any event-time order; the third one is late.
INSERT INTO transactions VALUES
  (1, 4000123, 7, 'merchant_001',  12.50, 'ok',     '10.0.0.1', '2024-01-01 09:00:00'),
  (2, 4000123, 7, 'merchant_042', 980.00, 'failed', '10.0.0.9', '2024-01-01 09:02:10'),
  (3, 4000123, 7, 'merchant_001',  25.00, 'ok',     '10.0.0.1', '2024-01-01 08:55:00'),
  (4, 5000456, 8, 'merchant_007',   3.99, 'ok',     '10.0.0.2', '2024-01-01 09:01:00');

-- Bulk load more with COPY (psql's \copy reads a client-side file):
--   \copy transactions FROM 'tx.csv' WITH (FORMAT csv, HEADER true)

-- Per-card activity in the hour before 09:05.
SELECT cc_num, count(*) AS tx_count, max(amt) AS max_amt,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM transactions
WHERE ts > TIMESTAMP '2024-01-01 09:05:00' - INTERVAL '1 hour' AND ts <= '2024-01-01 09:05:00'
GROUP BY cc_num
ORDER BY cc_num;

-- Running maximum per card, in event-time order (late row 3 lands in its place).
SELECT tid, cc_num, ts, amt,
       max(amt) OVER (PARTITION BY cc_num ORDER BY ts ROWS UNBOUNDED PRECEDING) AS max_so_far
FROM transactions
ORDER BY cc_num, ts;

-- A feature: maintained on every write, readable as a table at the watermark.
CREATE FEATURE IF NOT EXISTS card_1h AS
    SELECT cc_num, count(*) AS tx_count_1h, max(amt) AS tx_max_1h
    FROM transactions GROUP BY cc_num
    WINDOW SLIDING INTERVAL '1 hour';
SELECT * FROM card_1h ORDER BY cc_num;

-- A training set: each spine row gets the feature as it was at its own time, counting only
-- events strictly before it (no label leakage).
CREATE TABLE IF NOT EXISTS spine (tid BIGINT, cc_num BIGINT, at TIMESTAMP, is_fraud INTEGER);
INSERT INTO spine VALUES (2, 4000123, '2024-01-01 09:02:10', 1), (4, 5000456, '2024-01-01 09:01:00', 0);
SELECT s.tid, s.is_fraud, f.tx_count_1h, f.tx_max_1h
FROM spine s ASOF LEFT JOIN card_1h f ON s.cc_num = f.cc_num AND s.at > f.ts
ORDER BY s.tid;
