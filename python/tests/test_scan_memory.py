"""kafka_scan under a small memory budget returns what it returns with the default one."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import duckdb

from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory
from testkit.scan import as_stored, expected_scan, fetch

#: The repository: the measuring subprocess runs there, so that it imports testkit.
REPO = Path(__file__).resolve().parents[2]

VALUE_BYTES = 10_000
#: Messages per partition: partition 0 holds 60 % of the about 100 MB.
COUNTS = [6_000] + [572] * 7
#: Every partition's messages spread evenly over the same ten minutes.
SPAN_MS = 600_000


# About 100 MB over 8 partitions, one holding 60 % of the bytes: with max_buffer_bytes of 1 MB
# the scan returns exactly the rows, contents and order it returns with the default budget,
# which are exactly those of the order model.
def test_small_buffer_same_rows_as_default(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    filler = random.Random(13).randbytes(VALUE_BYTES)
    messages = [
        Message(
            p,
            f"{p}-{j}".encode(),
            f"{p}:{j}:".encode() + filler,
            BASE_TIMESTAMP_MS + j * SPAN_MS // count,
        )
        for p, count in enumerate(COUNTS)
        for j in range(count)
    ]
    assert sum(len(m.value) for m in messages) > 100_000_000
    topic = topics.create(
        "skewed",
        partitions=len(COUNTS),
        messages=messages,
        producer_config={"linger.ms": 50, "batch.size": 900_000, "batch.num.messages": 10_000},
    )
    expected = [
        (r.partition, r.offset, r.timestamp_ms, len(r.value), hashlib.md5(r.value).hexdigest())
        for r in expected_scan(as_stored(topic, len(COUNTS), messages))
    ]
    del messages
    query = (
        'SELECT "partition", "offset", epoch_ms("timestamp"), octet_length(value), md5(value) '
        f"FROM kafka_scan('{topic}', brokers := '{brokers}'{{}})"
    )
    assert fetch(con, query.format("")) == expected
    assert fetch(con, query.format(", max_buffer_bytes := 1048576")) == expected


#: A topic whose every partition is one record batch of small messages (produced partition by
#: partition), with timestamps interleaved across partitions.
ONE_BATCH_PARTITIONS, ONE_BATCH_MESSAGES = 200, 2_000
#: Measured in a fresh process: peak - baseline RSS of the scan below.
MEASURE_SCAN = """
import sys
import kafkars
from testkit.proc import status_kib

con = kafkars.connect()
base = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # resets VmHWM to the current RSS
[(rows,)] = con.sql(sys.argv[1]).fetchall()
print(rows, (status_kib("VmHWM") - base) // 1024)
"""


# 200 partitions of one record batch each (2,000 messages of 100 B): the ordered merge needs
# every partition's first message, so the whole topic arrives before the first row, far more
# than a 16 MiB budget. The scan then holds its own copies of what librdkafka fetched (about
# 100 bytes a record for a count) instead of leaving the messages in librdkafka's queues
# (about 390 bytes each, with their fetch responses): 47 MiB above the process's baseline
# against 159 MiB before. The rows and their order are exactly the order model's.
def test_one_batch_partitions_held_as_copies(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = [
        Message(p, None, b"v" * 100, BASE_TIMESTAMP_MS + j * ONE_BATCH_PARTITIONS + p)
        for p in range(ONE_BATCH_PARTITIONS)
        for j in range(ONE_BATCH_MESSAGES)
    ]
    topic = topics.create(
        "one-batch",
        partitions=ONE_BATCH_PARTITIONS,
        messages=messages,
        producer_config={
            "linger.ms": 1000,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        },
    )
    scan = f"kafka_scan('{topic}', brokers := '{brokers}', max_buffer_bytes := 16777216)"
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE_SCAN, f"SELECT count(*) FROM {scan}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert measured.returncode == 0, measured.stderr
    rows, peak_mib = map(int, measured.stdout.split())
    assert rows == len(messages)
    assert peak_mib < 96, f"peak - baseline {peak_mib} MiB"
    expected = [
        (r.partition, r.offset)
        for r in expected_scan(as_stored(topic, ONE_BATCH_PARTITIONS, messages))
    ]
    assert fetch(con, f'SELECT "partition", "offset" FROM {scan}') == expected
