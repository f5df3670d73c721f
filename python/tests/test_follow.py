"""kafka_scan(..., follow := true): the replay in a bounded scan's exact order, then messages
as they arrive, without end (a LIMIT or an interrupt ends the query)."""

from __future__ import annotations

import contextlib
import threading
import time

import duckdb
import pytest

import kafkars
from testkit.kafka import Message, TopicFactory, now_ms, shuffled_times
from testkit.scan import (
    SCAN_COLUMNS,
    BackgroundQuery,
    Record,
    as_stored,
    check_partition_order,
    expected_scan,
    merge_logs,
    read_back,
    scan,
    tstz,
    window,
)

FOLLOW = "follow := true, idle_timeout := INTERVAL 1 SECOND"


# With follow, the rows before the stop offsets are exactly a bounded scan's, in the same
# order, over two topics with tied timestamps; the LIMIT ends the endless query.
def test_follow_replay_matches_bounded_scan(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    first_messages = shuffled_times(50, 4, seed=41, prefix="a")
    second_messages = shuffled_times(30, 2, seed=41, prefix="b")
    first = topics.create("a", partitions=4, messages=first_messages)
    second = topics.create("b", partitions=2, messages=second_messages)
    log = merge_logs(as_stored(first, 4, first_messages), as_stored(second, 2, second_messages))
    assert read_back(brokers, [first, second]) == log
    expected = expected_scan(log)
    bounded = scan(con, f"kafka_scan('{first},{second}', brokers := '{brokers}')")
    assert bounded == expected
    follow = f"kafka_scan('{first},{second}', brokers := '{brokers}', {FOLLOW}) LIMIT 80"
    assert scan(con, follow, limit_s=30) == expected
    # The same with a smaller memory budget and the default idle_timeout.
    follow = (
        f"kafka_scan('{first},{second}', brokers := '{brokers}', follow := true, "
        "max_buffer_bytes := 65536) LIMIT 80"
    )
    assert scan(con, follow, limit_s=30) == expected


# With follow and a cutoff, the messages before the cutoff come first, exactly as a bounded
# scan with that cutoff returns them; the rest of the log follows, each partition in order.
def test_follow_cutoff_then_rest(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(60, 3, seed=42)
    topic = topics.create("cutoff", partitions=3, messages=messages)
    log = as_stored(topic, 3, messages)
    cutoff = tstz(messages[30].timestamp_ms)
    expected = expected_scan(window(log, cutoff_ms=messages[30].timestamp_ms))
    assert 10 < len(expected) < 50
    bounded = scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', cutoff := {cutoff})")
    assert bounded == expected
    rows = scan(
        con,
        f"kafka_scan('{topic}', brokers := '{brokers}', cutoff := {cutoff}, {FOLLOW}) LIMIT 60",
        limit_s=30,
    )
    assert rows[: len(expected)] == expected
    rest = rows[len(expected) :]
    everything = [r for records in log.values() for r in records]
    assert sorted(rest, key=lambda r: (r.partition, r.offset)) == [
        r for r in everything if r not in expected
    ]
    check_partition_order(rest)


# A followed query with LIMIT n waits for messages produced after it started and returns as
# soon as the n-th exists (within idle_timeout + 2 s), the replay first in order.
def test_follow_limit_waits_for_new_messages(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    history = shuffled_times(5, 2, seed=43)
    topic = topics.create("wait", partitions=2, messages=history)
    log = as_stored(topic, 2, history)
    query = BackgroundQuery(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', {FOLLOW}) "
        "LIMIT 8",
    )
    time.sleep(1.5)
    assert query.running(), "the query returned before 8 messages existed"
    stamp = now_ms()
    new = [Message(0, f"new{i}".encode(), b"live", stamp + i) for i in range(3)]
    topics.produce(topic, new)
    acknowledged = time.monotonic()
    rows = query.records(limit_s=30)
    assert query.finished_at is not None
    assert query.finished_at - acknowledged < 3.0
    assert rows[:5] == expected_scan(log)
    first_new = len(log[(topic, 0)])
    assert rows[5:] == [
        Record(topic, 0, first_new + i, stamp + i, f"new{i}".encode(), b"live") for i in range(3)
    ]
    assert con.sql("SELECT 42").fetchall() == [(42,)]


# Through DuckDB's Arrow reader on a kafkars.connect() connection, a followed scan hands each
# message over as it arrives: messages trickling in 0.3 s apart, over narrow columns, reach a
# batch_size=1 reader one by one, in order, while the query runs. (With DuckDB's streaming
# buffer left at 100 KB, none came out: it waited for the buffer to fill.) A row may wait for
# the next message, never longer: when the reading thread runs the scan itself, DuckDB asks
# for the next chunk before it hands over the last one (README, Known limitations).
def test_follow_arrow_reader_streams_each_message(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("trickle", partitions=2)
    con = kafkars.connect()
    arrived: list[tuple[int, int, float]] = []

    def read() -> None:
        # Opening the reader already waits for the first row.
        reader = con.sql(
            f"SELECT partition, \"offset\" FROM kafka_scan('{topic}', brokers := '{brokers}', "
            f"{FOLLOW})"
        ).to_arrow_reader(batch_size=1)
        # The interrupt that ends the query comes out of the reader as an OSError.
        with contextlib.suppress(duckdb.InterruptException, OSError):
            for batch in reader:
                for partition, offset in zip(
                    batch.column("partition").to_pylist(),
                    batch.column("offset").to_pylist(),
                    strict=True,
                ):
                    arrived.append((partition, offset, time.monotonic()))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    time.sleep(1.0)
    acknowledged = []
    for i in range(6):
        topics.produce(topic, [Message(i % 2, f"k{i}".encode(), b"live", now_ms())])
        acknowledged.append(time.monotonic())
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while len(arrived) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = [(p, o) for p, o, _ in arrived]
    # DuckDB sees the interrupt once the waiting scan returns: one more message ends the wait.
    con.interrupt()
    topics.produce(topic, [Message(0, b"end", b"wake up", now_ms())])
    thread.join(10)
    assert not thread.is_alive()
    con.close()
    assert rows[:5] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
    # Row i is out within a second of message i + 1's acknowledgement (0.3 s and a produce
    # call after its own), however DuckDB shares the work between its threads.
    late = [at - acknowledged[i + 1] for i, (_, _, at) in enumerate(arrived[:5])]
    assert max(late) < 1.0, late


# policy 'latest' with follow returns no history, only messages produced after the query
# started, from every partition.
def test_follow_latest_only_new(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    history = shuffled_times(12, 3, seed=44)
    topic = topics.create("latest", partitions=3, messages=history)
    log = as_stored(topic, 3, history)
    query = BackgroundQuery(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', "
        f"policy := 'latest', {FOLLOW}) LIMIT 3",
    )
    time.sleep(1.5)
    assert query.running()
    stamp = now_ms()
    topics.produce(topic, [Message(p, f"new{p}".encode(), b"live", stamp) for p in range(3)])
    rows = query.records(limit_s=30)
    assert sorted(rows, key=lambda r: r.partition) == [
        Record(topic, p, len(log[(topic, p)]), stamp, f"new{p}".encode(), b"live") for p in range(3)
    ]


# An endless followed query stops within about a second of con.interrupt() once the next
# message arrives, and the connection answers afterwards. (DuckDB acts on an interrupt only
# between calls into a table function, and a follow-mode call waits for a message: on a
# topic that stays silent, the interrupt waits for the next message. See the README.)
def test_follow_interrupt(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("endless", partitions=2, messages=shuffled_times(10, 2, seed=45))
    # A connection of its own: one that stays busy must not fail the `con` fixture's teardown.
    endless = kafkars.connect()
    query = BackgroundQuery(
        endless, f"SELECT count(*) FROM kafka_scan('{topic}', brokers := '{brokers}', {FOLLOW})"
    )
    time.sleep(1.5)
    assert query.running()
    endless.interrupt()
    # The next message ends the waiting call; DuckDB then sees the interrupt.
    topics.produce(topic, [Message(0, b"k", b"wake up", now_ms())])
    woken = time.monotonic()
    with pytest.raises(duckdb.InterruptException):
        query.rows(limit_s=10)
    assert query.finished_at is not None
    assert query.finished_at - woken < 1.0
    assert endless.sql("SELECT 42").fetchall() == [(42,)]
    endless.close()
