"""Topics of unusual shape read exactly, through kafka_scan and ConsumerManager: a thousand
partitions holding a few messages, a 10 MB message, an empty topic (a bounded scan ends at
once, a followed one goes live), and a topic holding nothing but tombstones."""

from __future__ import annotations

import hashlib
import random
import time

import duckdb

from kafkars import ConsumerManager, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, now_ms, shuffled_times
from testkit.scan import (
    SCAN_COLUMNS,
    BackgroundQuery,
    Record,
    as_stored,
    expected_scan,
    fetch,
    poll_count,
    poll_until_live,
    read_back,
    scan,
)

MIB = 1024 * 1024


def open_manager(brokers: str, topic: str, **options: int) -> ConsumerManager:
    """A manager replaying ``topic`` from the earliest offset, then following it."""
    return ConsumerManager(
        config={"bootstrap.servers": brokers},
        topics=[SourceTopic.from_earliest(topic)],
        **options,
    )


# A topic of 1000 partitions with 300 messages spread over them (most partitions empty): the
# scan returns exactly the order model's rows; kafka_partitions and kafka_offsets list every
# partition; ConsumerManager replays the same rows in the same order and goes live.
def test_thousand_partitions(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    partitions = 1000
    messages = shuffled_times(300, partitions, seed=61)
    topic = topics.create("wide", partitions=partitions, messages=messages)
    log = as_stored(topic, partitions, messages)
    expected = expected_scan(log)
    started = time.monotonic()
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected
    scanned_s = time.monotonic() - started
    assert scanned_s < 30, scanned_s
    watermarks = fetch(
        con,
        'SELECT "partition", low_watermark, high_watermark '
        f"FROM kafka_partitions('{topic}', brokers := '{brokers}')",
    )
    assert watermarks == [(p, 0, len(log[(topic, p)])) for p in range(partitions)]
    offsets = fetch(con, f"SELECT * FROM kafka_offsets('{topic}', brokers := '{brokers}')")
    assert offsets == [
        (topic, p, 0, len(log[(topic, p)]), len(log[(topic, p)]), None) for p in range(partitions)
    ]
    # A partition subset at the far end.
    tail = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', partitions := [998, 999])")
    assert tail == [r for r in expected if r.partition >= 998]
    with open_manager(brokers, topic, batch_size=64) as manager:
        polled = poll_until_live(manager, limit_s=60)
        assert polled.records == expected
        assert len(manager.partition_state()) == partitions


def ten_megabytes() -> bytes:
    """10 MiB of incompressible bytes (a broken copy would not go unnoticed)."""
    return random.Random(62).randbytes(10 * MIB)


# A 10 MiB message between small ones reads back byte-exact through both front ends, with the
# default budget and with a budget of 1 MiB (smaller than the message: it is let through whole).
def test_ten_megabyte_message(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    big = ten_megabytes()
    messages = [
        Message(0, b"before", b"small", BASE_TIMESTAMP_MS),
        Message(1, b"other", b"small", BASE_TIMESTAMP_MS + 1),
        Message(0, b"big", big, BASE_TIMESTAMP_MS + 2, [("size", str(len(big)).encode())]),
        Message(0, b"after", b"small", BASE_TIMESTAMP_MS + 3),
        Message(1, b"last", b"small", BASE_TIMESTAMP_MS + 4),
    ]
    limit = str(16 * MIB)
    topic = topics.create(
        "ten-mb",
        partitions=2,
        messages=messages,
        config={"max.message.bytes": limit},
        producer_config={"message.max.bytes": limit},
    )
    log = as_stored(topic, 2, messages)
    assert read_back(brokers, topic) == log
    expected = expected_scan(log)
    for budget in ["", ", max_buffer_bytes := 1048576"]:
        rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}'{budget})")
        assert rows == expected, budget
        digests = fetch(
            con,
            "SELECT key, octet_length(value), md5(value) "
            f"FROM kafka_scan('{topic}', brokers := '{brokers}'{budget})",
        )
        assert digests[2] == (b"big", len(big), hashlib.md5(big).hexdigest()), budget
    for budget in [256 * MIB, MIB]:
        with open_manager(brokers, topic, max_buffer_bytes=budget) as manager:
            polled = poll_until_live(manager, limit_s=60)
            assert polled.records == expected, budget


# An empty topic: a bounded scan returns no row at once; kafka_offsets and kafka_partitions
# show empty partitions; a followed scan and a manager go live and deliver what arrives next.
def test_empty_topic(con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("empty", partitions=3)
    started = time.monotonic()
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == []
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    assert fetch(
        con,
        f"SELECT count(*) FROM kafka_scan('{topic}', brokers := '{brokers}', partitions := [2])",
    ) == [(0,)]
    assert fetch(con, f"SELECT * FROM kafka_offsets('{topic}', brokers := '{brokers}')") == [
        (topic, p, 0, 0, 0, None) for p in range(3)
    ]
    assert fetch(
        con,
        'SELECT "partition", low_watermark, high_watermark '
        f"FROM kafka_partitions('{topic}', brokers := '{brokers}')",
    ) == [(p, 0, 0) for p in range(3)]

    manager = open_manager(brokers, topic)
    polled = poll_until_live(manager, limit_s=10)
    assert polled.records == []
    assert [state["stop"] for state in manager.partition_state()] == [0, 0, 0]
    query = BackgroundQuery(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', "
        "follow := true) LIMIT 3",
    )
    # Nothing to poll here: a followed query shows no state before its first row.
    time.sleep(1.0)
    assert query.running(), "a followed scan of an empty topic returned"
    stamp = now_ms()
    new = [Message(p, f"k{p}".encode(), b"live", stamp + p) for p in range(3)]
    topics.produce(topic, new)
    arrived = [Record(topic, p, 0, stamp + p, f"k{p}".encode(), b"live") for p in range(3)]
    assert sorted(query.records(limit_s=30), key=lambda r: r.partition) == arrived
    live = poll_count(manager, 3, limit_s=30)
    assert sorted(live.records, key=lambda r: r.partition) == arrived
    manager.close()


# A compacted topic holding only tombstones (a key, no value): every one is a row with its key
# and a NULL value, through both front ends; count(value) is 0.
def test_only_tombstones(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = [
        Message(i % 3, f"gone-{i}".encode(), None, BASE_TIMESTAMP_MS + i * 10) for i in range(90)
    ]
    topic = topics.create(
        "tombstones",
        partitions=3,
        messages=messages,
        config={"cleanup.policy": "compact", "delete.retention.ms": "86400000"},
    )
    log = as_stored(topic, 3, messages)
    assert read_back(brokers, topic) == log
    expected = expected_scan(log)
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected
    assert fetch(
        con,
        "SELECT count(*), count(key), count(value), count(DISTINCT key) "
        f"FROM kafka_scan('{topic}', brokers := '{brokers}')",
    ) == [(90, 90, 0, 90)]
    with open_manager(brokers, topic, batch_size=25) as manager:
        polled = poll_until_live(manager, limit_s=30)
        assert polled.records == expected
        assert all(record.value is None for record in polled.records)
