-- A write of one event, then reads of the feature it updates and of the raw events
-- (pgbench -D keys=N sets the key range).
\set k random(1, :keys)
\set cents random(1, 100000)
\set epoch random(1735689600, 1735775999)
INSERT INTO tx VALUES (:k, :cents / 100.0, to_timestamp(:epoch::bigint));
SELECT max_amt, n FROM card_stats WHERE card = :k;
SELECT count(*) FROM tx WHERE card = :k;
