"""Throughput and peak memory of an ordered kafka_scan that reads every value.

    .venv/bin/python bench/scan_count.py [--messages 1000000] [--size 100] [--partitions 8]

Produces the dataset once (a topic named after its shape, reused while present), then runs
``SELECT count(*), sum(octet_length(value)) FROM kafka_scan(...)`` in a fresh Python process per
run and reports the median wall time, rows/s, MB/s of values and the peak RSS of that process.
Needs the local broker (``make kafka-up``) and ``make build``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BROKERS = "127.0.0.1:19092"

RUN = """
import json, resource, sys, time, kafkars
con = kafkars.connect()
con.execute("SET enable_progress_bar = false")
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
[(count, total)] = con.sql(sys.argv[1]).fetchall()
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "count": count, "bytes": total,
                  "baseline_kib": baseline, "peak_kib": peak}))
"""


def ensure_topic(name: str, messages: int, size: int, partitions: int) -> None:
    """Create and fill the topic unless it already holds the dataset."""
    admin = AdminClient({"bootstrap.servers": BROKERS})
    if name in admin.list_topics(timeout=10).topics:
        return
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    producer = Producer(
        {
            "bootstrap.servers": BROKERS,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    value = b"x" * size
    started = time.perf_counter()
    for i in range(messages):
        while True:
            try:
                producer.produce(name, value=value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError(f"could not deliver every message to {name}")
    print(f"produced {messages} x {size} B to {name} in {time.perf_counter() - started:.1f} s")


def run_once(query: str) -> dict:
    """One scan in a new process: its timing, result, and peak RSS before and after."""
    result = subprocess.run(
        [sys.executable, "-c", RUN, query], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-buffer-bytes", type=int, default=None)
    args = parser.parse_args()

    topic = f"kafkars-bench-{args.messages}x{args.size}b-{args.partitions}p"
    ensure_topic(topic, args.messages, args.size, args.partitions)
    budget = f", max_buffer_bytes := {args.max_buffer_bytes}" if args.max_buffer_bytes else ""
    query = (
        "SELECT count(*), sum(octet_length(value)) "
        f"FROM kafka_scan('{topic}', brokers := '{BROKERS}'{budget})"
    )
    runs = [run_once(query) for _ in range(args.runs)]
    for run in runs:
        assert run["count"] == args.messages, run
    seconds = statistics.median(run["seconds"] for run in runs)
    peak = max(run["peak_kib"] for run in runs) / 1024
    baseline = max(run["baseline_kib"] for run in runs) / 1024
    print(
        f"{topic}: median {seconds:.2f} s of {[round(run['seconds'], 2) for run in runs]}, "
        f"{args.messages / seconds:,.0f} rows/s, "
        f"{args.messages * args.size / seconds / 1e6:.1f} MB/s of values, "
        f"peak RSS {peak:.0f} MiB (after connect {baseline:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
