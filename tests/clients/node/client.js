// node-postgres against asofdb (issue #6): run by tests/it/clients.rs as `node client.js PORT`.
// The scenario every client test follows (see psycopg_client.py); any failed check throws.
const assert = require('assert/strict');
const { pipeline } = require('stream/promises');
const { Readable } = require('stream');
const { Client } = require('pg');
const { from: copyFrom } = require('pg-copy-streams');

async function main(port) {
  const client = new Client({ host: '127.0.0.1', port, user: 'node', database: 'asofdb' });
  await client.connect();
  await client.query("CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, status TEXT, ts TIMESTAMP NOT NULL) " +
                     "WITH (event_time = 'ts')");
  // Parameterised queries use the extended protocol.
  const insert = 'INSERT INTO tx VALUES ($1, $2, $3, $4)';
  await client.query(insert, [1, 10.0, 'ok', '2025-01-01 12:00:00']);
  await client.query(insert, [1, 30.0, 'failed', '2025-01-01 12:10:00']);
  await client.query(insert, [2, 5.5, 'ok', '2025-01-01 12:05:00']);
  await pipeline(Readable.from(['2,7.25,failed,2025-01-01 12:20:00\n', '3,,ok,2025-01-01 12:30:00\n']),
                 client.query(copyFrom('COPY tx FROM STDIN WITH (FORMAT csv)')));
  let res = await client.query('SELECT count(*)::int AS n, sum(amt) AS total FROM tx');
  assert.deepEqual(res.rows[0], { n: 5, total: 52.75 });

  await client.query("CREATE FEATURE card_1h AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx " +
                     "GROUP BY card WINDOW SLIDING INTERVAL '1 hour'");
  // A named query is prepared once and reused.
  const read = { name: 'read_card', text: 'SELECT n::int AS n, max_amt FROM card_1h WHERE card = $1' };
  res = await client.query({ ...read, values: [1] });
  assert.deepEqual(res.rows, [{ n: 2, max_amt: 30 }]);
  res = await client.query({ ...read, values: [2] });
  assert.deepEqual(res.rows, [{ n: 2, max_amt: 7.25 }]);

  await client.query("CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT) WITH (event_time = 't')");
  await client.query("INSERT INTO spine VALUES (1, '2025-01-01 12:10:00', 1), (2, '2025-01-01 12:01:00', 0)");
  res = await client.query('SELECT s.card::int AS card, s.label, f.n::int AS n, f.max_amt FROM spine s ' +
                           'ASOF LEFT JOIN card_1h f ON s.card = f.card AND s.t > f.ts ORDER BY 1');
  assert.deepEqual(res.rows, [{ card: 1, label: 1, n: 1, max_amt: 10 }, { card: 2, label: 0, n: null, max_amt: null }]);

  await assert.rejects(client.query('SELECT * FROM no_such_table'), (e) => e.code === '42P01');
  await assert.rejects(client.query('SELECT $1::int', ['nope']), (e) => e.code === '22P02');
  // The same connection keeps working after the errors.
  res = await client.query('SELECT count(*)::int AS n FROM tx');
  assert.equal(res.rows[0].n, 5);
  await client.end();
  console.log('node-postgres client: ok');
}

main(Number(process.argv[2])).catch((e) => { console.error(e); process.exit(1); });
