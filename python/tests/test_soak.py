"""Soak: ConsumerManager following 20,000 msgs/s for two minutes.

The manager runs in a child process of its own (its memory is then the manager's, not the
history of every test this pytest process ran before), following a fresh topic from its first
offset; this process produces to it at a paced 20,000 msgs/s with confluent-kafka and samples
the child's VmRSS. The test asserts outcomes only: every acknowledged (partition, offset) read
exactly once and in offset order, memory that holds still, and a generous latency bound. The
benchmark (bench/run.py, its soak section) measures the same thing for ten minutes with figures.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import textwrap
from typing import IO, Any

import pytest

from testkit.kafka import TopicFactory, produce_paced
from testkit.proc import status_kib

RATE = 20_000
SECONDS = 120
PARTITIONS = 8
VALUE = os.urandom(100)
#: RSS after the second minute may differ from RSS after the first by this fraction.
RSS_TOLERANCE = 0.10
#: A sanity bound, not a target: fewer than 1 % of the rows may arrive later than this (ms).
LATENCY_BOUND_MS = 2000

# The child: follows the topic, checks each row against its partition's next offset and counts
# late rows, all in fixed memory; prints {"ready": true}, then one JSON object once it has read
# up to the end offsets this process writes to its stdin.
READER = textwrap.dedent(
    """
    import json, select, sys, time
    import pyarrow as pa
    import pyarrow.compute as pc
    from kafkars import ConsumerManager, SourceTopic

    brokers, topic = sys.argv[1], sys.argv[2]
    partitions, bound_ms = int(sys.argv[3]), int(sys.argv[4])
    expected = [0] * partitions
    rows = [0] * partitions
    wrong = []
    late = 0
    max_latency = 0.0
    ends = None
    deadline = None
    with ConsumerManager(
        config={"bootstrap.servers": brokers}, topics=[SourceTopic.from_earliest(topic)]
    ) as manager:
        manager.poll(timeout_ms=100)
        print(json.dumps({"ready": manager.is_live()}), flush=True)
        while True:
            batch = manager.poll(timeout_ms=100)
            returned = time.time() * 1000
            if batch.num_rows:
                latency = pc.subtract(returned, batch.column("timestamp").cast(pa.int64()))
                late += pc.sum(pc.greater(latency, bound_ms)).as_py() or 0
                max_latency = max(max_latency, pc.max(latency).as_py())
                for partition, offset in zip(
                    batch.column("partition").to_pylist(), batch.column("offset").to_pylist()
                ):
                    if offset != expected[partition] and len(wrong) < 10:
                        wrong.append([partition, expected[partition], offset])
                    expected[partition] = offset + 1
                    rows[partition] += 1
            if ends is None and select.select([sys.stdin], [], [], 0)[0]:
                ends = json.loads(sys.stdin.readline())
                deadline = time.monotonic() + 60
            if ends is not None and (
                all(expected[p] >= ends[p] for p in range(partitions))
                or time.monotonic() > deadline
            ):
                break
    print(json.dumps({
        "rows": rows, "next": expected, "wrong": wrong, "late": late,
        "max_latency_ms": max_latency,
    }), flush=True)
    """
)


def read_line(stream: IO[str], timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


# Following 20,000 msgs/s for two minutes, ConsumerManager returns every acknowledged offset of
# every partition exactly once and in offset order, its RSS after minute 2 is within 10 % of its
# RSS after minute 1, and fewer than 1 % of the rows come later than 2 s.
@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 150)
def test_soak_manager_follows_20k_per_second(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("soak", partitions=PARTITIONS)
    argv = [sys.executable, "-c", READER, brokers, topic, str(PARTITIONS), str(LATENCY_BOUND_MS)]
    rss: dict[int, int] = {}
    with tempfile.TemporaryFile(mode="w+") as stderr:
        child = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            ready = read_line(child.stdout, 60)
            if ready != '{"ready": true}\n':
                stderr.seek(0)
                pytest.fail(f"the reader did not start: {ready!r} {stderr.read()[-2000:]}")

            def sample(elapsed: float) -> None:
                # The first sample after each full minute, the last one just before the end.
                minute = int(elapsed // 60)
                if minute >= 1 and minute not in rss:
                    rss[minute] = status_kib("VmRSS", child.pid)

            production = produce_paced(
                brokers,
                topic,
                rate=RATE,
                total=RATE * SECONDS,
                partitions=range(PARTITIONS),
                partition_count=PARTITIONS,
                value=VALUE,
                on_tick=sample,
                linger_ms=5,
            )
            counts, ends, rate = production.counts, production.ends, production.rate
            assert production.undelivered == 0, "the producer could not deliver everything"
            rss[SECONDS // 60] = status_kib("VmRSS", child.pid)
            child.stdin.write(json.dumps(ends) + "\n")
            child.stdin.close()
            # The child reports once it has read up to the ends (or after its own 60 s).
            out = read_line(child.stdout, 90)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        stderr.seek(0)
        problems = stderr.read()[-2000:]
    assert child.returncode == 0, problems
    assert out, f"the reader reported nothing: {problems}"
    seen: dict[str, Any] = json.loads(out)

    # The producer's record: no errors, and each partition's acknowledged offsets are exactly
    # 0 .. end - 1 (a fresh topic, one producer).
    assert production.errors == []
    assert counts == ends
    assert sum(counts) == RATE * SECONDS
    # Every partition read from 0 up to its end, each row the one after the last: exactly once,
    # in offset order, nothing missing and nothing beyond.
    assert seen["wrong"] == [], f"(partition, expected offset, got) {seen['wrong']}"
    assert seen["next"] == ends
    assert seen["rows"] == counts
    assert sum(seen["rows"]) == RATE * SECONDS
    # Memory holds still between the first minute and the second.
    first, last = rss[1], rss[SECONDS // 60]
    assert abs(last - first) <= RSS_TOLERANCE * first, (
        f"RSS {first / 1024:.1f} MiB after minute 1, {last / 1024:.1f} MiB after minute 2 "
        f"(producer at {rate:,.0f} msgs/s)"
    )
    assert seen["late"] < 0.01 * sum(counts), (
        f"{seen['late']} of {sum(counts)} rows later than {LATENCY_BOUND_MS} ms, the latest "
        f"{seen['max_latency_ms']:.0f} ms"
    )
