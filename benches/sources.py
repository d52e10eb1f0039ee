#!/usr/bin/env python3
"""A Kafka source's throughput and freshness (issue #25), against librdkafka's mock cluster.

1. Throughput: a source reads into a table with the five benchmark features of
   `benches/writes_vs_postgres.py` while the generator's events (2M by default) are produced
   to its topic as JSON messages, as fast as one Python producer can (the mock broker keeps
   only the last 5 MiB of each partition, so they cannot all be produced first). Printed:
   events/s from the first message produced until every message is stored (durably: a
   source's batch is committed like a COPY), the producer's own rate (a source that keeps up
   with it measures the producer), and, in the same run, events/s of psql's `\\copy` of the
   same events into a table with the same features.
2. Freshness: a producer sends a steady 10K messages/s; every 50 ms one of them is a probe with
   a card of its own, and a prepared point read of a lifetime count by card is repeated until
   it sees the probe. Printed: p50, p99 and max of the time from the producer's send to that
   read.

The mock cluster (three brokers, real TCP listeners) lives in this script's producer
(`confluent_kafka`, installed with pip if missing); it has no CreateTopics, so the topic gets
the mock's default of 4 partitions.

Usage: python3 benches/sources.py [--rows 2000000] [--seconds 10] [--binary target/release/asofdb]
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pgbench_vs_postgres import TX_DDL, generated_transactions, psql, start_asofdb
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


def freshness(port, producer, bootstrap, seconds):
    psql(port, "CREATE TABLE fresh (card TEXT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')")
    psql(port, "CREATE FEATURE fresh_n AS SELECT card, count(*) AS n FROM fresh GROUP BY card")
    fast = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    fast.produce("fresh", json.dumps({"card": "first", "amt": 1.0, "ts": "2026-01-01 00:00:00"}).encode())
    fast.flush(10)
    psql(port, f"CREATE SOURCE f INTO fresh FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'fresh')")
    stop = threading.Event()

    def background():
        sent, begin = 0, time.perf_counter()
        while not stop.is_set():
            due = int((time.perf_counter() - begin) * 10_000)
            while sent < due:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
                fast.produce("fresh", json.dumps({"card": f"c{sent % 1000}", "amt": 1.0, "ts": stamp}).encode())
                sent += 1
            fast.poll(0)
            time.sleep(0.001)

    loader = threading.Thread(target=background)
    loader.start()
    latencies = []
    with psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=asofdb", autocommit=True) as conn:
        read = "SELECT n FROM fresh_n WHERE card = %s"
        time.sleep(1)
        end = time.perf_counter() + seconds
        probe = 0
        while time.perf_counter() < end:
            probe += 1
            card = f"probe{probe}"
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            sent = time.perf_counter()
            fast.produce("fresh", json.dumps({"card": card, "amt": 1.0, "ts": stamp}).encode())
            fast.poll(0)
            while conn.execute(read, (card,), prepare=True).fetchone() is None:
                pass
            latencies.append((time.perf_counter() - sent) * 1000)
            time.sleep(0.05)
    stop.set()
    loader.join()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"freshness: {len(latencies)} probes at 10K messages/s: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
          f"max {latencies[-1]:.1f} ms (goals: p50 <= 5 ms, p99 <= 20 ms); mean {statistics.mean(latencies):.1f} ms",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--binary")
    parser.add_argument("--only", choices=["throughput", "freshness"])
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
                freshness(port, producer, bootstrap, args.seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=120)


if __name__ == "__main__":
    main()
