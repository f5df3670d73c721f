"""kafka_scan's order on adversarial data: exactly the k-way merge of the order model.

The model (:func:`testkit.scan.expected_scan`): each partition in offset order; repeatedly the
head with the smallest ``(timestamp, topic, partition, offset)`` among all non-exhausted
partitions' heads comes next.
"""

from __future__ import annotations

import random

import duckdb

from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory
from testkit.scan import Record, as_stored, expected_scan, only_partitions, read_back, scan

SECOND = 1000


def record(topic: str, partition: int, offset: int, seconds: int) -> Record:
    return Record(topic, partition, offset, BASE_TIMESTAMP_MS + seconds * SECOND, None, None)


# The model itself: ties go to the smaller topic, then partition; a partition whose timestamps
# go backwards keeps its offset order, its late head holding back its early records.
def test_order_model() -> None:
    log = {
        ("b", 0): [record("b", 0, 0, 1), record("b", 0, 1, 5)],
        ("a", 1): [record("a", 1, 0, 1), record("a", 1, 1, 2)],
        ("a", 0): [record("a", 0, 0, 9), record("a", 0, 1, 0), record("a", 0, 2, 3)],
        ("a", 2): [],
    }
    assert [(r.topic, r.partition, r.offset) for r in expected_scan(log)] == [
        ("a", 1, 0),  # t=1, topic a before b
        ("b", 0, 0),  # t=1
        ("a", 1, 1),  # t=2
        ("b", 0, 1),  # t=5; a/0's head is still t=9
        ("a", 0, 0),  # t=9: the only partition left
        ("a", 0, 1),  # t=0, after its predecessor in offset order
        ("a", 0, 2),  # t=3
    ]
    # Equal timestamps within a topic: partition, then offset.
    tied = {
        ("t", 1): [record("t", 1, 0, 0), record("t", 1, 1, 0)],
        ("t", 0): [record("t", 0, 0, 0), record("t", 0, 1, 0)],
    }
    assert [(r.partition, r.offset) for r in expected_scan(tied)] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]


# The Record type compares whole rows: every column counts.
def test_record_compares_every_column() -> None:
    base = Record("t", 0, 0, 1, b"k", b"v", (("h", None),))
    assert base == Record("t", 0, 0, 1, b"k", b"v", (("h", None),), "CreateTime")
    assert base != Record("t", 0, 0, 1, b"k", b"v", (("h", b""),))
    assert base != Record("t", 0, 0, 1, b"k", b"v", (("h", None),), "LogAppendTime")
    assert base != Record("t", 0, 1, 1, b"k", b"v", (("h", None),))
    assert base != Record("t", 0, 0, 1, None, b"v", (("h", None),))


def produce_and_expect(
    topics: TopicFactory, brokers: str, hint: str, partitions: int, messages: list[Message]
) -> tuple[str, list[Record]]:
    """Create the topic, check the log holds what the model assumes, return the expected scan."""
    topic = topics.create(hint, partitions=partitions, messages=messages)
    log = as_stored(topic, partitions, messages)
    assert read_back(brokers, topic) == log
    return topic, expected_scan(log)


# One partition holds 100 times the messages of the others, interleaved in time with them and
# tied with them on many timestamps.
def test_order_one_partition_hundredfold(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = [
        Message(p, f"{p}-{j}".encode(), f"v{p}-{j}".encode(), BASE_TIMESTAMP_MS + j * SECOND)
        for j in range(20)
        for p in range(1, 4)
    ]
    # Partition 0: 2000 messages 10 ms apart over the same 20 s; every 100th ties with the rest.
    messages += [
        Message(0, f"0-{j}".encode(), f"v0-{j}".encode(), BASE_TIMESTAMP_MS + j * 10)
        for j in range(2000)
    ]
    topic, expected = produce_and_expect(topics, brokers, "skewed", 4, messages)
    rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')")
    assert len(rows) == 2060
    assert rows == expected


# An empty partition neither stalls the merge nor adds rows; reading only it gives nothing.
def test_order_empty_partition(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = [
        Message(p, f"{p}-{j}".encode(), b"x", BASE_TIMESTAMP_MS + (3 * j + p) * SECOND)
        for j in range(30)
        for p in (0, 2, 3)
    ]
    topic, expected = produce_and_expect(topics, brokers, "hole", 4, messages)
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', partitions := [1])") == []
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', partitions := [1, 2])") == [
        r for r in expected if r.partition == 2
    ]


# A partition whose messages all lie later than everyone else's comes entirely last, and one
# whose messages all lie earlier comes entirely first.
def test_order_partition_all_later_or_earlier(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    middle = [
        Message(p, f"{p}-{j}".encode(), b"m", BASE_TIMESTAMP_MS + (1000 + 2 * j + p) * SECOND)
        for j in range(50)
        for p in (0, 1)
    ]
    later = [
        Message(2, f"2-{j}".encode(), b"late", BASE_TIMESTAMP_MS + (5000 + j) * SECOND)
        for j in range(50)
    ]
    earlier = [
        Message(3, f"3-{j}".encode(), b"early", BASE_TIMESTAMP_MS + j * SECOND) for j in range(50)
    ]
    # Produced in the adversarial order: the late partition first, the early one last.
    topic, expected = produce_and_expect(topics, brokers, "late", 4, later + middle + earlier)
    assert [r.value for r in expected] == [b"early"] * 50 + [b"m"] * 100 + [b"late"] * 50
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected


# Timestamps going backwards inside a partition: that partition keeps its offset order, and the
# merge compares only the partitions' current heads.
def test_order_backwards_timestamps(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    falling = [50, 40, 30, 20, 10]
    rising = [0, 15, 25, 35, 45, 55]
    messages = [
        Message(0, f"f{s}".encode(), b"f", BASE_TIMESTAMP_MS + s * SECOND) for s in falling
    ] + [Message(1, f"r{s}".encode(), b"r", BASE_TIMESTAMP_MS + s * SECOND) for s in rising]
    topic, expected = produce_and_expect(topics, brokers, "backwards", 2, messages)
    # Partition 0's head (t=50) waits until partition 1's head passes it; then its whole
    # descending run (all below partition 1's head, t=55) comes in offset order.
    assert [r.key for r in expected] == [
        b"r0",
        b"r15",
        b"r25",
        b"r35",
        b"r45",
        b"f50",
        b"f40",
        b"f30",
        b"f20",
        b"f10",
        b"r55",
    ]
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected


# Backwards timestamps on a larger scale: many partitions each with their own disorder; each
# partition's offset order survives and the merge matches the model exactly.
def test_order_unsorted_partitions(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    rng = random.Random(11)
    messages = [
        Message(
            rng.randrange(6), f"k{i}".encode(), None, BASE_TIMESTAMP_MS + rng.randrange(40) * SECOND
        )
        for i in range(600)
    ]
    topic, expected = produce_and_expect(topics, brokers, "unsorted", 6, messages)
    rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')")
    assert rows == expected
    # A plain sort by timestamp would be a different order: the data really tests the merge.
    assert expected != sorted(expected, key=lambda r: (r.timestamp_ms, r.partition, r.offset))


# More than 64 partitions (70, about 20 messages each, random timestamps with ties, some
# partitions sorted and some not), read whole and as a subset.
def test_order_seventy_partitions(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    rng = random.Random(12)
    messages = []
    for p in range(70):
        times = [rng.randrange(60) for _ in range(rng.randrange(10, 31))]
        if p % 3:
            times.sort()
        messages += [
            Message(p, f"{p}-{j}".encode(), f"{s}".encode(), BASE_TIMESTAMP_MS + s * SECOND)
            for j, s in enumerate(times)
        ]
    # Interleave the partitions' messages at random, each partition's own order kept.
    by_partition = {p: [m for m in messages if m.partition == p] for p in range(70)}
    interleaved = []
    while any(by_partition.values()):
        p = rng.choice([p for p, queue in by_partition.items() if queue])
        interleaved.append(by_partition[p].pop(0))
    topic = topics.create("seventy", partitions=70, messages=interleaved)
    log = as_stored(topic, 70, interleaved)
    assert read_back(brokers, topic) == log
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected_scan(log)
    chosen = [0, 1, 33, 64, 65, 69]
    assert scan(
        con, f"kafka_scan('{topic}', brokers := '{brokers}', partitions := {chosen})"
    ) == expected_scan(only_partitions(log, chosen))
