"""kafka_scan under a small memory budget returns what it returns with the default one."""

from __future__ import annotations

import hashlib
import random

import duckdb

from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory
from testkit.scan import as_stored, expected_scan, fetch

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
