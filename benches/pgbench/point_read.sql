-- A random entity's current feature value (pgbench -D keys=N sets the key range).
\set k random(1, :keys)
SELECT max_amt, n FROM card_stats WHERE card = :k;
