"""kafka_scan on the kinds of log Kafka really holds: transactions, compaction, compression,
headers, null keys, tombstones, large messages and broker-set timestamps."""

from __future__ import annotations

import hashlib
import random
import time

import duckdb
import pytest
from confluent_kafka import IsolationLevel

from kafkars import ConsumerManager, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory
from testkit.scan import (
    Log,
    as_stored,
    between,
    contents,
    expected_scan,
    fetch,
    poll_until_live,
    read_back,
    scan,
    tstz,
)

SECOND = 1000


def committed_only(
    topic: str, partitions: int, transactions: list[tuple[list[Message], bool]]
) -> dict[tuple[str, int], list[tuple]]:
    """Per partition, the ``(key, value, timestamp, headers)`` of the committed messages."""
    log = as_stored(
        topic, partitions, [m for messages, commit in transactions if commit for m in messages]
    )
    return contents(log)


# A transactional topic with committed and aborted transactions (one partition ending in an
# aborted transaction, one in a commit marker): exactly the committed records at their real
# offsets, and the scan finishes although the last offsets hold markers and aborted records.
def test_scan_transactions_read_committed(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    def batch(name: str, partitions: list[int], count: int, second: int) -> list[Message]:
        return [
            Message(
                partitions[i % len(partitions)],
                f"{name}-{i}".encode(),
                f"{name} value {i}".encode(),
                BASE_TIMESTAMP_MS + (second + i) * SECOND,
            )
            for i in range(count)
        ]

    transactions = [
        (batch("t1", [0, 1], 6, 0), True),
        (batch("t2", [0, 2], 6, 3), False),
        (batch("t3", [1, 2], 40, 5), True),
        (batch("t4", [0], 30, 8), False),
        (batch("t5", [0, 1, 2], 9, 20), True),
        (batch("t6", [2], 5, 30), False),  # partition 2 ends with an aborted transaction
        (batch("t7", [1], 3, 31), True),  # partition 1 ends with a commit marker
    ]
    topic = topics.create("txn", partitions=3)
    topics.produce_transactions(topic, transactions)
    log = read_back(brokers, topic)
    assert contents(log) == committed_only(topic, 3, transactions)
    # Markers and aborted records leave gaps: the offsets are the log's real ones.
    assert [r.offset for r in log[(topic, 0)]] == [0, 1, 2, 39, 40, 41]
    written = topics.end_offsets(topic, IsolationLevel.READ_UNCOMMITTED)
    assert written == {0: 3 + 1 + 3 + 1 + 30 + 1 + 3 + 1, 1: 3 + 1 + 20 + 1 + 3 + 1 + 3 + 1,
                       2: 3 + 1 + 20 + 1 + 3 + 1 + 5 + 1}  # fmt: skip
    started = time.monotonic()
    rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')")
    assert time.monotonic() - started < 30
    assert rows == expected_scan(log)
    assert all(not r.key.startswith((b"t2", b"t4", b"t6")) for r in rows)
    assert fetch(
        con,
        "SELECT partition, start_offset, stop_offset "
        f"FROM kafka_offsets('{topic}', brokers := '{brokers}')",
    ) == [(p, 0, written[p]) for p in range(3)]
    # A start inside an aborted stretch and a cutoff on a marker. Kafka finds the first offset
    # at or after a timestamp among all offsets, aborted records and markers included (markers
    # carry the time they were written: now, after every 2024 timestamp here); the scan reads
    # exactly the committed records between, and finishes.
    start_ms, cutoff_ms = BASE_TIMESTAMP_MS + 4 * SECOND, BASE_TIMESTAMP_MS + 25 * SECOND
    starts = topics.offsets_for_time(topic, start_ms)
    stops = topics.offsets_for_time(topic, cutoff_ms)
    assert starts == {0: 2, 1: 2, 2: 0}  # partition 2's offset 0: an aborted record of t2
    assert stops == {0: 3, 1: 3, 2: 3}  # t1's and t2's markers
    from_start = dict.fromkeys(written, 0)
    for arguments, lows, highs in [
        (f"start := {tstz(start_ms)}", starts, written),
        (f"cutoff := {tstz(cutoff_ms)}", from_start, stops),
        (f"start := {tstz(start_ms)}, cutoff := {tstz(cutoff_ms)}", starts, stops),
    ]:
        call = f"('{topic}', brokers := '{brokers}', {arguments})"
        assert scan(con, f"kafka_scan{call}") == expected_scan(between(log, lows, highs))
        assert fetch(
            con, f"SELECT partition, start_offset, stop_offset FROM kafka_offsets{call}"
        ) == [(p, lows[p], highs[p]) for p in range(3)], arguments


def wait_for_compaction(brokers: str, topic: str, expected: Log, timeout: float = 45.0) -> Log:
    """Read ``topic`` back until the cleaner has brought it to ``expected``; fail otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        log = read_back(brokers, topic)
        if log == expected:
            return log
        if time.monotonic() > deadline:
            got = {tp: [r.offset for r in records] for tp, records in log.items()}
            raise AssertionError(f"{topic} not compacted in {timeout}s: offsets {got}")
        time.sleep(0.5)


# A compacted topic after the cleaner ran: the scan returns what is physically in the log,
# with the gaps compaction left (and tombstones kept), and finishes.
def test_scan_compacted_topic(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    config = {
        "cleanup.policy": "compact",
        # The broker rolls a segment when a batch's timestamp is over segment.ms past the
        # segment's first: every round below (a minute apart) gets a segment of its own.
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "86400000",  # keep tombstones for the test's life
    }
    topic = topics.create("compacted", partitions=2, config=config)
    rounds = []
    for round_ in range(4):
        messages = [
            Message(
                i % 2,
                f"key{i % 6}".encode(),
                None if (round_, i) == (3, 10) else f"round {round_} value {i}".encode(),
                BASE_TIMESTAMP_MS + (60 * round_ + i) * SECOND,
            )
            for i in range(12)
        ]
        rounds.append(messages)
        topics.produce(topic, messages)
    # The active segment is never cleaned: one last message rolls the fourth round's out.
    last = [Message(p, b"last", b"end", BASE_TIMESTAMP_MS + 3600 * SECOND) for p in range(2)]
    topics.produce(topic, last)
    produced = as_stored(topic, 2, [m for messages in rounds for m in messages] + last)
    # Compaction keeps, of all but the active segment, only the newest record of each key.
    compacted: Log = {}
    for tp, records in produced.items():
        *cleanable, active = records
        newest = {r.key: r.offset for r in cleanable}
        compacted[tp] = [r for r in cleanable if newest[r.key] == r.offset] + [active]
    assert [r.offset for r in compacted[(topic, 0)]] == [21, 22, 23, 24]
    assert compacted[(topic, 0)][2].value is None  # key4's tombstone
    log = wait_for_compaction(brokers, topic, compacted)
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected_scan(log)
    assert scan(
        con, f"kafka_scan('{topic}', brokers := '{brokers}', partitions := [1])"
    ) == expected_scan({(topic, 1): log[(topic, 1)]})
    # The log start is still 0: the removed offsets lie inside the range read.
    assert fetch(
        con,
        "SELECT partition, start_offset, stop_offset "
        f"FROM kafka_offsets('{topic}', brokers := '{brokers}')",
    ) == [(0, 0, 25), (1, 0, 25)]
    # The log did not change under the test.
    assert read_back(brokers, topic) == log


# Topics written with each compression codec read back exactly, also when the scan starts and
# stops in the middle of a compressed batch.
@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_scan_compressed(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str, codec: str
) -> None:
    messages = [
        Message(
            i % 3,
            f"key-{i}".encode(),
            (f"{codec} message {i} " * (1 + i % 50)).encode(),
            BASE_TIMESTAMP_MS + i * SECOND,
            [("codec", codec.encode()), ("n", str(i).encode())],
        )
        for i in range(600)
    ]
    topic = topics.create(
        codec,
        partitions=3,
        messages=messages,
        producer_config={"compression.type": codec, "linger.ms": 100},
    )
    log = as_stored(topic, 3, messages)
    assert read_back(brokers, topic) == log
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected_scan(log)
    start, cutoff = BASE_TIMESTAMP_MS + 101 * SECOND, BASE_TIMESTAMP_MS + 502 * SECOND
    inside = scan(
        con,
        f"kafka_scan('{topic}', brokers := '{brokers}', "
        f"start := {tstz(start)}, cutoff := {tstz(cutoff)})",
    )
    assert inside == [r for r in expected_scan(log) if start <= r.timestamp_ms < cutoff]


# Headers keep their order, duplicate keys and NULL values; null keys stay NULL (not empty),
# tombstones have a NULL value (not empty); empty keys, values and header values stay empty.
def test_scan_headers_null_keys_tombstones(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    every_byte = bytes(range(256))
    messages = [
        Message(0, b"dup", b"v", BASE_TIMESTAMP_MS, [("a", b"1"), ("b", b"2"), ("a", b"3")]),
        Message(1, None, b"no key", BASE_TIMESTAMP_MS + 1, [("n", None), ("n", None)]),
        Message(0, b"gone", None, BASE_TIMESTAMP_MS + 2),
        Message(1, None, None, BASE_TIMESTAMP_MS + 3, [("only-null", None)]),
        Message(0, b"", b"", BASE_TIMESTAMP_MS + 4, [("", b""), ("e", b"")]),
        Message(1, every_byte, every_byte, BASE_TIMESTAMP_MS + 5, [("bin", every_byte)]),
        Message(0, "ключ".encode(), "значение".encode(), BASE_TIMESTAMP_MS + 6, [("ключ", b"x")]),
        Message(1, b"many", b"h", BASE_TIMESTAMP_MS + 7, [(f"h{i % 7}", None) for i in range(100)]),
    ]
    topic = topics.create("headers", partitions=2, messages=messages)
    log = as_stored(topic, 2, messages)
    assert read_back(brokers, topic) == log
    rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')")
    assert rows == expected_scan(log)
    assert [(r.key, r.value) for r in rows][1:4] == [
        (None, b"no key"),
        (b"gone", None),
        (None, None),
    ]
    assert fetch(
        con,
        "SELECT key IS NULL, value IS NULL, len(headers) "
        f"FROM kafka_scan('{topic}', brokers := '{brokers}')",
    ) == [
        (False, False, 3),
        (True, False, 2),
        (False, True, 0),
        (True, True, 1),
        (False, False, 2),
        (False, False, 1),
        (False, False, 1),
        (False, False, 100),
    ]


# At the smallest budget each partition copies into 4 KiB chunks: messages of mixed sizes
# with headers (some larger than a chunk, some empty or NULL) overflow them again and again,
# and every key, value and header reads back, through kafka_scan and ConsumerManager.
def test_scan_payloads_across_chunk_boundaries(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    rng = random.Random(53)

    def payload() -> bytes | None:
        size = rng.choice([None, 0, 1, rng.randrange(2, 600), rng.randrange(600, 9000)])
        return None if size is None else rng.randbytes(size)

    messages = [
        Message(
            i % 2,
            payload(),
            payload(),
            BASE_TIMESTAMP_MS + i,
            [(f"h{j}", payload()) for j in range(rng.randrange(0, 4))],
        )
        for i in range(600)
    ]
    topic = topics.create("chunks", partitions=2, messages=messages)
    log = as_stored(topic, 2, messages)
    assert read_back(brokers, topic) == log
    budget = 64 * 1024
    rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', max_buffer_bytes := {budget})")
    assert rows == expected_scan(log)
    with ConsumerManager(
        config={"bootstrap.servers": brokers},
        topics=[SourceTopic.from_earliest(topic)],
        max_buffer_bytes=budget,
    ) as manager:
        polled = poll_until_live(manager)
    assert polled.records == expected_scan(log)


# A 5 MB message between small ones reads back whole.
def test_scan_five_megabyte_message(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    big = bytes(range(251)) * (5 * 1024 * 1024 // 251)
    messages = [
        Message(0, b"before", b"small", BASE_TIMESTAMP_MS),
        Message(1, b"other", b"small", BASE_TIMESTAMP_MS + 1),
        Message(0, b"big", big, BASE_TIMESTAMP_MS + 2, [("size", str(len(big)).encode())]),
        Message(0, b"after", b"small", BASE_TIMESTAMP_MS + 3),
        Message(1, b"last", b"small", BASE_TIMESTAMP_MS + 4),
    ]
    topic = topics.create(
        "big",
        partitions=2,
        messages=messages,
        config={"max.message.bytes": "10485760"},
        producer_config={"message.max.bytes": 10485760},
    )
    log = as_stored(topic, 2, messages)
    assert read_back(brokers, topic) == log
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected_scan(log)
    assert fetch(
        con,
        "SELECT key, octet_length(value), md5(value) "
        f"FROM kafka_scan('{topic}', brokers := '{brokers}')",
    ) == [
        (b"before", 5, hashlib.md5(b"small").hexdigest()),
        (b"other", 5, hashlib.md5(b"small").hexdigest()),
        (b"big", len(big), hashlib.md5(big).hexdigest()),
        (b"after", 5, hashlib.md5(b"small").hexdigest()),
        (b"last", 5, hashlib.md5(b"small").hexdigest()),
    ]


# A topic whose broker stamps the time (LogAppendTime): those timestamps, and the type says so.
def test_scan_log_append_time(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = [Message(i % 2, f"k{i}".encode(), b"v", BASE_TIMESTAMP_MS + i) for i in range(20)]
    topic = topics.create(
        "appended",
        partitions=2,
        messages=messages,
        config={"message.timestamp.type": "LogAppendTime"},
    )
    log = read_back(brokers, topic)
    assert all(r.timestamp_type == "LogAppendTime" for tp in log for r in log[tp])
    assert all(r.timestamp_ms > BASE_TIMESTAMP_MS + 10**9 for tp in log for r in log[tp])
    assert [(r.key, r.offset) for r in log[(topic, 0)]] == [
        (f"k{i}".encode(), i // 2) for i in range(0, 20, 2)
    ]
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected_scan(log)


# A record without a timestamp (Kafka's -1, `RecordBatch.NO_TIMESTAMP`: what a producer that
# set none writes) has NULL `timestamp` and `timestamp_type` in kafka_scan and in
# ConsumerManager batches, never 1969-12-31 23:59:59.999. The merge releases it as soon as it
# is its partition's head, before every stamped record of the other partitions, and its
# partition's offset order holds.
def test_scan_records_without_timestamp(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = [
        Message(0, b"a0", b"v", BASE_TIMESTAMP_MS + 1000),
        Message(0, b"a1", b"v", -1),
        Message(0, b"a2", b"v", BASE_TIMESTAMP_MS + 3000),
        Message(1, b"b0", b"v", BASE_TIMESTAMP_MS + 500),
        Message(1, b"b1", b"v", BASE_TIMESTAMP_MS + 2000),
        Message(1, b"b2", b"v", -1),
    ]
    topic = topics.create("no-timestamp", partitions=2, messages=messages)
    stamped = {BASE_TIMESTAMP_MS + ms: "CreateTime" for ms in (500, 1000, 2000, 3000)}
    expected = [
        (key, partition, offset, ms, stamped.get(ms))
        for key, partition, offset, ms in [
            (b"b0", 1, 0, BASE_TIMESTAMP_MS + 500),
            (b"a0", 0, 0, BASE_TIMESTAMP_MS + 1000),
            (b"a1", 0, 1, None),
            (b"b1", 1, 1, BASE_TIMESTAMP_MS + 2000),
            (b"b2", 1, 2, None),
            (b"a2", 0, 2, BASE_TIMESTAMP_MS + 3000),
        ]
    ]
    rows = fetch(
        con,
        'SELECT key, partition, "offset", epoch_ms(timestamp), timestamp_type '
        f"FROM kafka_scan('{topic}', brokers := '{brokers}')",
    )
    assert rows == expected
    with ConsumerManager(
        config={"bootstrap.servers": brokers}, topics=[SourceTopic.from_earliest(topic)]
    ) as manager:
        polled = poll_until_live(manager)
    assert [
        (r.key, r.partition, r.offset, r.timestamp_ms, r.timestamp_type) for r in polled.records
    ] == expected
