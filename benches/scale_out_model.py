#!/usr/bin/env python3
"""Issue #29, part 5: the throughput and rebalance cost of online serving across nodes, as
docs/scale-out.md designs it, calculated from figures measured on one 2-core node
(docs/benchmarks.md) and checked by a small simulation of key placement. Nothing here runs a
cluster: the design has no code yet.

The model: a source's events are partitioned by entity key into P partitions (as a Kafka
topic's are); each of N nodes owns P/N partitions of every source as a primary, and R-1 other
nodes hold replicas that consume the same partitions from the log themselves (no state is
shipped between nodes). A router sends a point read to one replica of its key's partition and
splits a multi-key vector by partition.

Usage: python3 benches/scale_out_model.py [--nodes 1,2,4,8,16] [--partitions 64] [--replicas 2]
"""

from __future__ import annotations

import argparse
import random

# Measured on one 2-core node (docs/benchmarks.md; the section names say where).
READS_PER_NODE = 49_000  # prepared point reads/s ("Point reads vs PostgreSQL", issue #6)
HTTP_VECTORS_PER_NODE = 70_000  # 3-feature vectors/s over HTTP ("Feature vectors over HTTP vs Feast")
INGEST_PER_NODE = 408_000  # events/s, COPY into a table with 5 features ("Backfill on every core", COPY profiled)
# A new copy consumes its partitions' log as a source does, through the same path as COPY: it
# rebuilds at the ingest rate (a bulk load then a backfill per feature could be faster; not measured).
REPLAY_PER_NODE = INGEST_PER_NODE
ROUTER_HOP_MS = 0.05  # one more loopback-like hop in a data centre, added latency (assumed)
NETWORK_BYTES_PER_SEC = 1e9  # 10 Gbit/s between nodes, most of it usable (assumed)
# A snapshot holds each key's events inside the windows (docs/storage.md), LZ4-compressed.
SNAPSHOT_BYTES_PER_EVENT = 40  # (assumed: a few columns of a compressed event)


def distinct_nodes(keys: int, nodes: int, partitions: int, trials: int = 2000, seed: int = 1) -> float:
    """Mean number of nodes a vector of `keys` random keys touches (simulated placement:
    partition = hash(key) % P, owner = partition % N)."""
    rng = random.Random(seed)
    total = 0
    for _ in range(trials):
        total += len({rng.randrange(partitions) % nodes for _ in range(keys)})
    return total / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,2,4,8,16")
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--events-per-sec", type=float, default=200_000, help="the sources' total rate")
    parser.add_argument("--horizon-days", type=float, default=1.0, help="the longest window to rebuild on a move")
    parser.add_argument("--ingest-share", type=float, default=0.5,
                        help="at most this share of a node's time goes to applying events")
    args = parser.parse_args()
    p, r = args.partitions, args.replicas
    print(f"P = {p} partitions, R = {r} copies of each, sources at {args.events_per_sec:,.0f} events/s, "
          f"rebuild horizon {args.horizon_days:g} day(s)\n")
    print("| nodes | ingest capacity (events/s) | point reads/s | 10-key vectors/s (upper bound) | nodes per 10-key vector |"
          " rebalance: partitions moved | events replayed per new node | rebuild from the log |"
          " or: snapshot shipped | ship + catch up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in [int(x) for x in args.nodes.split(",")]:
        copies = min(r, n)
        # Every copy applies every event of its partitions: the cluster ingests N/R nodes' worth.
        ingest = n * INGEST_PER_NODE / copies
        # Reads share what ingest leaves of each node.
        busy = min(args.events_per_sec / ingest, args.ingest_share) if ingest else 1.0
        reads = n * READS_PER_NODE * (1 - busy)
        touched = distinct_nodes(10, n, p)
        # An upper bound: a vector is charged one request per node it touches and nothing per
        # key (the per-key cost of a vector was not measured).
        vectors = n * HTTP_VECTORS_PER_NODE * (1 - busy) / touched
        # Adding one node: it takes P/(N+1) partitions' copies; each is rebuilt from the log
        # over the horizon while the old owner keeps serving, then ownership flips.
        moved = p * min(r, n + 1) / (n + 1)
        replay = args.events_per_sec * args.horizon_days * 86_400 * moved / p
        seconds = replay / REPLAY_PER_NODE
        # Or the old owner's snapshot of those partitions' features (their events inside the
        # horizon), then the log from the snapshot's offsets (a checkpoint interval, ~1 min).
        shipped = replay * SNAPSHOT_BYTES_PER_EVENT
        catch_up = args.events_per_sec * 60 * moved / p / REPLAY_PER_NODE
        ship_seconds = shipped / NETWORK_BYTES_PER_SEC + catch_up
        overloaded = " (over capacity)" if args.events_per_sec > ingest else ""
        print(f"| {n} | {ingest:,.0f}{overloaded} | {reads:,.0f} | {vectors:,.0f} | {touched:.2f} | {moved:.1f} |"
              f" {replay:,.0f} | {seconds / 3600:.1f} h | {shipped / 1e9:,.0f} GB | {ship_seconds / 60:.1f} min |")
    print(f"\nA point read through the router adds one hop (~{ROUTER_HOP_MS} ms); a vector waits for its"
          " slowest node, so its p99 is about the p99 of the largest of that many reads.")


if __name__ == "__main__":
    main()
