#!/usr/bin/env python3
"""Feeds a Kafka topic with generated fraud-style events as JSON messages, for trying a source
(docs/sources.md). Without --brokers it starts librdkafka's mock cluster (three brokers on
loopback ports, alive as long as this script runs) and prints its address.

    python3 examples/kafka_producer.py [--brokers HOST:PORT] [--topic transactions]
                                       [--rate 1000] [--seconds 60]
"""
import argparse
import json
import random
import subprocess
import sys
import time
from datetime import datetime, timezone

try:
    import confluent_kafka
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "confluent-kafka"], check=True)
    import confluent_kafka


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers")
    parser.add_argument("--topic", default="transactions")
    parser.add_argument("--rate", type=float, default=1000, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    config = {"bootstrap.servers": args.brokers} if args.brokers else {"test.mock.num.brokers": 3}
    producer = confluent_kafka.Producer({**config, "linger.ms": 5})
    brokers = ",".join(f"{b.host}:{b.port}" for b in producer.list_topics(timeout=10).brokers.values())
    print(f"brokers = '{brokers}', topic = '{args.topic}'", flush=True)
    rng = random.Random(7)
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < args.seconds:
        while sent < (time.monotonic() - start) * args.rate:
            sent += 1
            event = {
                "tid": sent,
                "card": f"card_{rng.randrange(100)}",
                "amount": round(rng.lognormvariate(3, 1), 2),
                "status": "failed" if rng.random() < 0.05 else "ok",
                "ts": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
            if rng.random() < 0.001:
                producer.produce(args.topic, b"this is not JSON")  # lands in asofdb.source_errors
            producer.produce(args.topic, json.dumps(event).encode())
        producer.poll(0)
        time.sleep(0.01)
    producer.flush(30)
    print(f"sent {sent} events", flush=True)


if __name__ == "__main__":
    main()
