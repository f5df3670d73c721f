"""kafka_scan(..., ordered := false): every row exactly once, each partition in offset order,
the partitions shared out among DuckDB's threads."""

from __future__ import annotations

import threading
import time

import duckdb

from testkit.kafka import Message, TopicFactory, now_ms, shuffled_times
from testkit.scan import (
    SCAN_COLUMNS,
    BackgroundQuery,
    as_stored,
    by_position,
    check_partition_order,
    expected_scan,
    merge_logs,
    only_partitions,
    read_back,
    scan,
    tstz,
    window,
)


# Many partitions over several threads: the same rows as the ordered scan, each partition in
# its own order, and (with timestamps interleaving across partitions) not the merged order.
def test_unordered_every_row_once(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(3000, 12, seed=21)
    topic = topics.create("unordered", partitions=12, messages=messages)
    log = as_stored(topic, 12, messages)
    assert read_back(brokers, topic) == log
    con.execute("SET threads = 4")
    rows = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', ordered := false)")
    assert len(rows) == 3000
    check_partition_order(rows)
    assert by_position(rows) == by_position(expected_scan(log))
    # The ordered scan of the same data is the merge.
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', ordered := true)") == (
        expected_scan(log)
    )


# With one thread, a small budget and two topics, still every row once.
def test_unordered_one_thread_small_budget(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    first = [Message(i % 3, None, b"a" * 2000, 1_700_000_000_000 + i) for i in range(600)]
    second = [Message(i % 2, b"k", b"b" * 500, 1_700_000_000_000 + i) for i in range(400)]
    a = topics.create("a", partitions=3, messages=first)
    b = topics.create("b", partitions=2, messages=second)
    con.execute("SET threads = 1")
    rows = scan(
        con,
        f"kafka_scan('{a},{b}', brokers := '{brokers}', ordered := false, "
        "max_buffer_bytes := 65536)",
    )
    check_partition_order(rows)
    expected = expected_scan(merge_logs(as_stored(a, 3, first), as_stored(b, 2, second)))
    assert by_position(rows) == by_position(expected)


# The selection applies as in an ordered scan: partitions, start and cutoff.
def test_unordered_selection(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(800, 5, seed=22)
    topic = topics.create("selection", partitions=5, messages=messages)
    log = as_stored(topic, 5, messages)
    times = sorted(m.timestamp_ms for m in messages)
    start, cutoff = times[200], times[600]
    con.execute("SET threads = 2")
    rows = scan(
        con,
        f"kafka_scan('{topic}', brokers := '{brokers}', ordered := false, "
        f"partitions := [0, 2, 4], start := {tstz(start)}, cutoff := {tstz(cutoff)})",
    )
    check_partition_order(rows)
    expected = expected_scan(window(only_partitions(log, [0, 2, 4]), start, cutoff))
    assert expected
    assert by_position(rows) == by_position(expected)


# Counting through several threads gives the same totals, and the offsets preview agrees.
def test_unordered_aggregates(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(5000, 8, seed=23)
    topic = topics.create("count", partitions=8, messages=messages)
    con.execute("SET threads = 2")
    [(count, total, partitions)] = con.sql(
        "SELECT count(*), sum(octet_length(value)), count(DISTINCT partition) "
        f"FROM kafka_scan('{topic}', brokers := '{brokers}', ordered := false)"
    ).fetchall()
    assert (count, total, partitions) == (5000, sum(len(m.value) for m in messages), 8)
    [(previewed,)] = con.sql(
        f"SELECT sum(messages) FROM kafka_offsets('{topic}', brokers := '{brokers}')"
    ).fetchall()
    assert previewed == 5000


# Follow mode without the merge: the replay, then messages produced later, each partition in
# order.
def test_unordered_follow(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    old = [Message(i % 3, None, f"old{i}".encode(), now_ms() - 60_000 + i) for i in range(30)]
    topic = topics.create("follow", partitions=3, messages=old)
    query = BackgroundQuery(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', "
        "ordered := false, follow := true) LIMIT 60",
    )

    def produce_later() -> None:
        time.sleep(1.0)
        new = [Message(i % 3, None, f"new{i}".encode(), now_ms()) for i in range(30)]
        topics.produce(topic, new)

    producer = threading.Thread(target=produce_later)
    producer.start()
    rows = query.records()
    producer.join()
    check_partition_order(rows)
    assert sorted(r.value for r in rows) == sorted(
        [f"old{i}".encode() for i in range(30)] + [f"new{i}".encode() for i in range(30)]
    )
    # The replay comes before anything live.
    assert {r.value[:3] for r in rows[:30]} == {b"old"}
