#!/usr/bin/env python3
"""A Kafka source's throughput and freshness (issue #25), against librdkafka's mock cluster.

1. Throughput: a source reads into a table with the five benchmark features of
   `benches/writes_vs_postgres.py` while the generator's events (2M by default) are produced
   to its topic as JSON messages, as fast as one Python producer can (the mock broker keeps
   only the last 5 MiB of each partition, so they cannot all be produced first). Printed:
   events/s from the first message produced until every message is stored (durably: a
   source's batch is committed like a COPY), the producer's own rate (a source that keeps up
   with it measures the producer), and, in the same run, events/s of psql's `\\copy` of the
   same events into a table with the same features. Then the source alone: as many events
   as the mock keeps (80K) produced first, and a new source's events/s from CREATE SOURCE
   until every one is stored.
2. Freshness: a producer sends a steady 10K messages/s (in batches of 5 ms, as a busy producer
   does); every 50 ms a probe with a card of its own is sent alone, and a prepared point read of
   a lifetime count by card is repeated until it sees the probe. Printed: p50, p99 and max of
   the time from the producer's send to that read. `--batch-ms` sets the `batch_ms` of this
   source and of 3.'s freshness source.
3. CDC (`--only cdc`): a PostgreSQL 15 upstream (`wal_level = logical`, started here) and a
   source with `snapshot = false` on its table, fed with the same events through COPY in
   transactions of 10,000 rows: rows/s from the first upstream COPY until every row is stored
   in asofdb, with the features. Then a second source with `snapshot = true` on the filled
   table: the snapshot's rows/s. Then freshness: 1,000 upstream transactions/s of 10 rows, and
   every 50 ms a probe row, read back through a feature as in 2.

The mock cluster (three brokers, real TCP listeners) lives in this script's producer
(`confluent_kafka`, installed with pip if missing); it has no CreateTopics, so the topic gets
the mock's default of 4 partitions.

Usage: python3 benches/sources.py [--rows 2000000] [--seconds 10] [--binary target/release/asofdb]
                                  [--only throughput|freshness|cdc] [--batch-ms N]
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pgbench_vs_postgres import TX_DDL, generated_transactions, psql, start_asofdb, start_postgres
from writes_vs_postgres import FEATURES

try:
    import confluent_kafka
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "confluent-kafka"], check=True)
    import confluent_kafka
import psycopg


def mock_cluster():
    """A producer owning a mock cluster of three brokers, and their bootstrap list."""
    producer = confluent_kafka.Producer({"test.mock.num.brokers": 3, "linger.ms": 5,
                                         "queue.buffering.max.messages": 2_000_000,
                                         "queue.buffering.max.kbytes": 2_000_000})
    brokers = producer.list_topics(timeout=10).brokers.values()
    return producer, ",".join(f"{b.host}:{b.port}" for b in brokers)


def produce_all(producer, topic, events_csv, first=0, until=None):
    """Events `first..until` of the CSV (all by default), each as one JSON message; returns the count."""
    count = 0
    with open(events_csv) as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i < first:
                continue
            if until is not None and i >= until:
                break
            payload = json.dumps(row)
            while True:
                try:
                    producer.produce(topic, payload.encode())
                    break
                except BufferError:
                    producer.poll(0.01)
            count += 1
    producer.flush(120)
    return count


def value(port, sql):
    """The first column of the first row of `sql`."""
    with psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=asofdb", autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


def features_on(table):
    return [f.replace("tx5", table).replace("CREATE FEATURE ", f"CREATE FEATURE {table}_") for f in FEATURES]


def throughput(port, producer, bootstrap, events_csv):
    """The source reads while the producer writes: librdkafka's mock broker keeps only the last
    5 MiB (or 100K messages) of each partition, so the events cannot all wait in the topic."""
    psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE src ')} WITH (event_time = 'ts')")
    for feature in features_on("src"):
        psql(port, feature)
    # The topic exists once its first message is produced (the mock broker has no CreateTopics).
    produce_all(producer, "tx", events_csv, 0, 1)
    psql(port, f"CREATE SOURCE s INTO src FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'tx')")
    start = time.perf_counter()
    produced = 1 + produce_all(producer, "tx", events_csv, 1)
    producing = time.perf_counter() - start
    while True:
        stored = value(port, "SELECT rows_ingested + bad_messages FROM asofdb.sources")
        if stored >= produced:
            break
        if time.perf_counter() - start > 300:
            print(f"source: only {stored} of {produced} after 300 s: it fell more than the mock broker keeps "
                  "behind the producer, and the broker dropped the oldest messages", flush=True)
            break
        time.sleep(0.02)
    took = time.perf_counter() - start
    offsets = value(port, "SELECT position FROM asofdb.sources")
    read = sum(int(p.split(":")[1]) for p in offsets.split(","))
    stored = value(port, "SELECT count(*) FROM src")
    source_rate = produced / took
    print(f"producer: {produced} JSON messages in {producing:.2f} s = {produced / producing / 1000:.0f}K/s", flush=True)
    print(f"source: every message stored {took:.2f} s after the first was produced = {source_rate / 1000:.0f}K "
          f"events/s (goal 500K/s: {source_rate / 500_000:.2f}x); {stored} rows, offsets read {read}", flush=True)
    psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE cp ')} WITH (event_time = 'ts')")
    for feature in features_on("cp"):
        psql(port, feature)
    start = time.perf_counter()
    psql(port, f"\\copy cp FROM '{events_csv}' WITH (FORMAT csv, HEADER true)")
    took = time.perf_counter() - start
    copy_rate = produced / took
    print(f"COPY:   {produced} events in {took:.2f} s = {copy_rate / 1000:.0f}K events/s; "
          f"source / COPY = {source_rate / copy_rate:.2f}", flush=True)
    psql(port, "DROP SOURCE s")
    ceiling(port, producer, bootstrap, events_csv)


def ceiling(port, producer, bootstrap, events_csv):
    """The source's own rate: as many events as the mock broker keeps (its default 4 partitions,
    each at most 5 MiB) produced first, then read by a new source into a table with the five
    features, timed from CREATE SOURCE until every one is stored."""
    count = produce_all(producer, "burst", events_csv, 0, 80_000)
    probe = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "ceiling"})
    partitions = probe.list_topics("burst", timeout=10).topics["burst"].partitions
    marks = [probe.get_watermark_offsets(confluent_kafka.TopicPartition("burst", p), timeout=10) for p in partitions]
    probe.close()
    if any(low != 0 for low, _ in marks) or sum(high for _, high in marks) != count:
        raise SystemExit(f"the mock broker dropped messages of topic burst: {marks}; produce fewer")
    psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE burst ')} WITH (event_time = 'ts')")
    for feature in features_on("burst"):
        psql(port, feature)
    start = time.perf_counter()
    psql(port, f"CREATE SOURCE b INTO burst FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'burst')")
    wait_stored(port, "b", count, limit=300)
    took = time.perf_counter() - start
    print(f"source alone: {count} waiting JSON messages stored in {took:.2f} s from CREATE SOURCE = "
          f"{count / took / 1000:.0f}K events/s (goal 500K/s: {count / took / 500_000:.2f}x)", flush=True)
    psql(port, "DROP SOURCE b")


def batch_option(batch_ms):
    """The `batch_ms` option for CREATE SOURCE's WITH list (after another option), or nothing."""
    return "" if batch_ms is None else f", batch_ms = {batch_ms}"


def batch_setting(batch_ms):
    return "the default batch_ms" if batch_ms is None else f"batch_ms = {batch_ms}"


def freshness(port, producer, bootstrap, seconds, batch_ms=None):
    psql(port, "CREATE TABLE fresh (card TEXT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')")
    psql(port, "CREATE FEATURE fresh_n AS SELECT card, count(*) AS n FROM fresh GROUP BY card")
    # The probes go alone (no linger); the load in batches of 5 ms, as a busy producer sends
    # it. The mock broker finds a fetch's offset by walking every message set of the partition
    # (`rd_kafka_mock_msgset_find`, "FIXME: Maintain an index"): one set per message would slow
    # every fetch down as the topic grows, and the load would measure the mock.
    fast = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    load = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    fast.produce("fresh", json.dumps({"card": "first", "amt": 1.0, "ts": "2026-01-01 00:00:00"}).encode())
    fast.flush(10)
    psql(port, f"CREATE SOURCE f INTO fresh FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'fresh'"
               f"{batch_option(batch_ms)})")
    stop = threading.Event()

    def background():
        sent, begin = 0, time.perf_counter()
        while not stop.is_set():
            due = int((time.perf_counter() - begin) * 10_000)
            while sent < due:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
                load.produce("fresh", json.dumps({"card": f"c{sent % 1000}", "amt": 1.0, "ts": stamp}).encode())
                sent += 1
            load.poll(0)
            time.sleep(0.001)

    loader = threading.Thread(target=background)
    loader.start()

    def send_probe(card):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        fast.produce("fresh", json.dumps({"card": card, "amt": 1.0, "ts": stamp}).encode())
        fast.poll(0)

    with psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=asofdb", autocommit=True) as conn:
        time.sleep(1)
        latencies = probe_latencies(conn, "SELECT n FROM fresh_n WHERE card = %s", send_probe, seconds)
    stop.set()
    loader.join()
    print(f"freshness at 10K messages/s, {batch_setting(batch_ms)}: {summary(latencies)}", flush=True)


def wait_stored(port, source, rows, limit=600):
    """Seconds until `source` has stored `rows` rows (or bad ones)."""
    start = time.perf_counter()
    while value(port, f"SELECT rows_ingested + bad_messages FROM asofdb.sources WHERE name = '{source}'") < rows:
        if time.perf_counter() - start > limit:
            raise SystemExit(f"{source}: not every row after {limit} s")
        time.sleep(0.02)
    return time.perf_counter() - start


def probe_latencies(conn, read, write_probe, seconds):
    """Every 50 ms, `write_probe(card)` then the prepared `read` until it sees the card: ms each."""
    latencies, probe = [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        probe += 1
        card = f"probe{probe}"
        sent = time.perf_counter()
        write_probe(card)
        while conn.execute(read, (card,), prepare=True).fetchone() is None:
            pass
        latencies.append((time.perf_counter() - sent) * 1000)
        time.sleep(0.05)
    latencies.sort()
    return latencies


def summary(latencies):
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return (f"{len(latencies)} probes: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {latencies[-1]:.1f} ms "
            f"(goals: p50 <= 5 ms, p99 <= 20 ms); mean {statistics.mean(latencies):.1f} ms")


def cdc(port, events_csv, seconds, batch_ms=None):
    # A directory of its own: as root, PostgreSQL runs as the postgres user, who must reach it.
    pg_work = tempfile.mkdtemp(prefix="asofdb-cdc-")
    pg_port, pg_stop = start_postgres(pg_work, "-c wal_level=logical")
    try:
        upstream = f"host=127.0.0.1 port={pg_port} user=bench dbname=asofdb"
        with psycopg.connect(upstream, autocommit=True) as up:
            up.execute(TX_DDL.replace("TABLE tx ", "TABLE up "))
            psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE cdc ')} WITH (event_time = 'ts')")
            for feature in features_on("cdc"):
                psql(port, feature)
            psql(port, f"CREATE SOURCE c INTO cdc FROM POSTGRES WITH (conninfo = '{upstream}', table = 'up', "
                       "snapshot = false)")
            # The runner makes its slot after CREATE SOURCE returns: what commits before that is
            # rightly not streamed (snapshot = false), so the COPYs wait for it.
            while value(port, "SELECT position FROM asofdb.sources WHERE name = 'c'") in (None, ""):
                time.sleep(0.01)
            with open(events_csv) as f:
                header = f.readline()
                lines = f.readlines()
            start = time.perf_counter()
            for i in range(0, len(lines), 10_000):
                with up.transaction(), up.cursor().copy("COPY up FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write("".join(lines[i:i + 10_000]))
            upstream_took = time.perf_counter() - start
            took = upstream_took + wait_stored(port, "c", len(lines))
            print(f"CDC: {len(lines)} rows COPYed upstream in transactions of 10,000 in {upstream_took:.2f} s; "
                  f"all stored in asofdb (5 features) {took:.2f} s after the first = {len(lines) / took / 1000:.0f}K rows/s",
                  flush=True)
            psql(port, f"{TX_DDL.replace('TABLE tx ', 'TABLE snap ')} WITH (event_time = 'ts')")
            for feature in features_on("snap"):
                psql(port, feature)
            start = time.perf_counter()
            psql(port, f"CREATE SOURCE sn INTO snap FROM POSTGRES WITH (conninfo = '{upstream}', table = 'up', "
                       "publication = 'asofdb_c')")
            wait_stored(port, "sn", len(lines))
            took = time.perf_counter() - start
            print(f"snapshot: {len(lines)} rows in {took:.2f} s from CREATE SOURCE = {len(lines) / took / 1000:.0f}K rows/s", flush=True)
            psql(port, "DROP SOURCE sn")

            up.execute("CREATE TABLE fresh_up (card TEXT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL)")
            psql(port, "CREATE TABLE fresh_cdc (card TEXT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) "
                       "WITH (event_time = 'ts')")
            psql(port, "CREATE FEATURE fresh_cdc_n AS SELECT card, count(*) AS n FROM fresh_cdc GROUP BY card")
            psql(port, f"CREATE SOURCE fc INTO fresh_cdc FROM POSTGRES WITH (conninfo = '{upstream}', "
                       f"table = 'fresh_up'{batch_option(batch_ms)})")
            stop = threading.Event()

            def background():
                with psycopg.connect(upstream, autocommit=True) as bg:
                    sent, begin = 0, time.perf_counter()
                    while not stop.is_set():
                        due = int((time.perf_counter() - begin) * 1_000)
                        while sent < due:
                            bg.execute("INSERT INTO fresh_up SELECT 'c' || (i % 1000), 1.0, now() "
                                       "FROM generate_series(1, 10) AS i")
                            sent += 1
                        time.sleep(0.001)

            loader = threading.Thread(target=background)
            loader.start()
            with psycopg.connect(upstream, autocommit=True) as writer, \
                    psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=asofdb", autocommit=True) as conn:
                time.sleep(1)
                latencies = probe_latencies(
                    conn, "SELECT n FROM fresh_cdc_n WHERE card = %s",
                    lambda card: writer.execute("INSERT INTO fresh_up VALUES (%s, 1.0, now())", (card,)), seconds)
            stop.set()
            loader.join()
            print(f"CDC freshness at 10K rows/s (1K transactions/s), {batch_setting(batch_ms)}: {summary(latencies)}",
                  flush=True)
            psql(port, "DROP SOURCE fc")
            psql(port, "DROP SOURCE c")
    finally:
        subprocess.run(pg_stop, stdout=subprocess.DEVNULL)
        shutil.rmtree(pg_work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--binary")
    parser.add_argument("--only", choices=["throughput", "freshness", "cdc"])
    parser.add_argument("--batch-ms", type=int, help="the freshness sources' batch_ms (default: the option's default)")
    args = parser.parse_args()
    events_csv = generated_transactions(args.rows, max(args.rows // 100, 100))
    with tempfile.TemporaryDirectory() as work:
        proc, port = start_asofdb(work, args.binary)
        try:
            producer, bootstrap = mock_cluster()
            print(f"asofdb on port {port}, mock Kafka cluster at {bootstrap}", flush=True)
            if args.only in (None, "throughput"):
                throughput(port, producer, bootstrap, events_csv)
            if args.only in (None, "freshness"):
                freshness(port, producer, bootstrap, args.seconds, args.batch_ms)
            if args.only in (None, "cdc"):
                cdc(port, events_csv, args.seconds, args.batch_ms)
        finally:
            proc.terminate()
            proc.wait(timeout=120)


if __name__ == "__main__":
    main()
