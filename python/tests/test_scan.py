"""kafka_scan and kafka_offsets: exact rows and order for each policy and selection."""

from __future__ import annotations

import datetime
import random
import time

import duckdb

from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, round_robin, shuffled_times
from testkit.scan import (
    BATCH_COLUMNS,
    as_stored,
    expected_offsets,
    expected_scan,
    fetch,
    merge_logs,
    only_partitions,
    read_back,
    scan,
    tstz,
    window,
)

UTC = datetime.timezone.utc


def offsets(con: duckdb.DuckDBPyConnection, call: str) -> list[tuple]:
    """The rows of ``kafka_offsets(...)`` as they come."""
    return fetch(con, f"SELECT topic, partition, start_offset, stop_offset, messages FROM {call}")


# The default (earliest) and policy 'earliest' return every message, merged by timestamp with
# ties broken by partition, then offset.
def test_scan_earliest_exact_rows(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(40, 3, seed=1)
    topic = topics.create("earliest", partitions=3, messages=messages)
    log = as_stored(topic, 3, messages)
    assert read_back(brokers, topic) == log
    expected = expected_scan(log)
    assert len(expected) == 40
    assert scan(con, f"kafka_scan('{topic}', brokers := '{brokers}')") == expected
    assert (
        scan(con, f"kafka_scan('{topic}', brokers := '{brokers}', policy := 'earliest')")
        == expected
    )


# policy 'latest' starts at the high watermark: no historical rows, and the scan ends.
def test_scan_latest_returns_nothing(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = round_robin(10, 3)
    topic = topics.create("latest", partitions=3, messages=messages)
    call = f"('{topic}', brokers := '{brokers}', policy := 'latest')"
    assert scan(con, f"kafka_scan{call}") == []
    assert offsets(con, f"kafka_offsets{call}") == [
        (topic, 0, 4, 4, 0),
        (topic, 1, 3, 3, 0),
        (topic, 2, 3, 3, 0),
    ]


# A start timestamp reads, per partition, from the first message at or after it (inclusive),
# whether the policy is implied by start or named.
def test_scan_timestamp_start(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(60, 4, seed=2)
    topic = topics.create("start", partitions=4, messages=messages)
    log = as_stored(topic, 4, messages)
    for start_ms in [messages[25].timestamp_ms, messages[25].timestamp_ms + 1]:
        expected = expected_scan(window(log, start_ms=start_ms))
        assert 0 < len(expected) < 60
        implied = f"kafka_scan('{topic}', brokers := '{brokers}', start := {tstz(start_ms)})"
        named = (
            f"kafka_scan('{topic}', brokers := '{brokers}', policy := 'timestamp', "
            f"start := {tstz(start_ms)})"
        )
        assert scan(con, implied) == expected
        assert scan(con, named) == expected
        assert offsets(con, implied.replace("kafka_scan", "kafka_offsets")) == (
            expected_offsets(log, start_ms=start_ms)
        )


# A lookback reads the messages of the last interval before now; older ones are skipped,
# newer ones (even future timestamps) are all read.
def test_scan_relative_lookback(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    now_ms = int(time.time() * 1000)
    minute = 60_000
    old = [-180, -150, -120, -95]  # minutes before now: beyond a one-hour lookback
    recent = [-30, -20, -10, -1, 60]  # within the last hour (and one an hour ahead)
    messages = [
        Message(i % 2, f"old{i}".encode(), b"old", now_ms + m * minute) for i, m in enumerate(old)
    ] + [
        Message(i % 2, f"new{i}".encode(), b"new", now_ms + m * minute)
        for i, m in enumerate(recent)
    ]
    topic = topics.create("relative", partitions=2, messages=messages)
    log = as_stored(topic, 2, messages)
    expected = expected_scan(window(log, start_ms=now_ms - 60 * minute))
    assert [record.value for record in expected] == [b"new"] * 5
    implied = f"kafka_scan('{topic}', brokers := '{brokers}', lookback := INTERVAL 1 HOUR)"
    named = (
        f"kafka_scan('{topic}', brokers := '{brokers}', policy := 'relative', "
        "lookback := INTERVAL 60 MINUTES)"
    )
    assert scan(con, implied) == expected
    assert scan(con, named) == expected
    # Old messages take offsets 0-1 in each partition; the recent ones follow.
    assert offsets(con, implied.replace("kafka_scan", "kafka_offsets")) == [
        (topic, 0, 2, 5, 3),
        (topic, 1, 2, 4, 2),
    ]


# A cutoff stops each partition before its first message at or after the cutoff (exclusive).
def test_scan_cutoff(con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(60, 4, seed=3)
    topic = topics.create("cutoff", partitions=4, messages=messages)
    log = as_stored(topic, 4, messages)
    cutoff_ms = messages[30].timestamp_ms
    expected = expected_scan(window(log, cutoff_ms=cutoff_ms))
    assert 0 < len(expected) < 60
    assert all(record.timestamp_ms < cutoff_ms for record in expected)
    call = f"('{topic}', brokers := '{brokers}', cutoff := {tstz(cutoff_ms)})"
    assert scan(con, f"kafka_scan{call}") == expected
    assert offsets(con, f"kafka_offsets{call}") == expected_offsets(log, cutoff_ms=cutoff_ms)


# A start and a cutoff together read [start, cutoff) of each partition.
def test_scan_start_and_cutoff(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(60, 3, seed=4)
    topic = topics.create("between", partitions=3, messages=messages)
    log = as_stored(topic, 3, messages)
    start_ms, cutoff_ms = messages[15].timestamp_ms, messages[45].timestamp_ms
    expected = expected_scan(window(log, start_ms=start_ms, cutoff_ms=cutoff_ms))
    assert 0 < len(expected) < 45
    call = (
        f"('{topic}', brokers := '{brokers}', start := {tstz(start_ms)}, "
        f"cutoff := {tstz(cutoff_ms)})"
    )
    assert scan(con, f"kafka_scan{call}") == expected
    assert offsets(con, f"kafka_offsets{call}") == (
        expected_offsets(log, start_ms=start_ms, cutoff_ms=cutoff_ms)
    )


# partitions := [...] reads only those partitions, still merged in order.
def test_scan_partition_subset(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(80, 5, seed=5)
    topic = topics.create("subset", partitions=5, messages=messages)
    log = as_stored(topic, 5, messages)
    for chosen in [[0, 2], [4], [3, 1]]:
        selection = only_partitions(log, chosen)
        call = f"('{topic}', brokers := '{brokers}', partitions := {chosen})"
        assert scan(con, f"kafka_scan{call}") == expected_scan(selection)
        assert offsets(con, f"kafka_offsets{call}") == expected_offsets(selection)


# Several topics at once ('a,b'): one merge over all their partitions, equal timestamps
# ordered by topic name; partitions := applies to each topic; listing order does not matter.
def test_scan_several_topics(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    first_messages = shuffled_times(30, 2, seed=6)
    # The same timestamps in the same partitions, and one more partition.
    second_messages = [*first_messages, Message(2, b"b2", b"only b", BASE_TIMESTAMP_MS + 5000)]
    first = topics.create("a", partitions=2, messages=first_messages)
    second = topics.create("b", partitions=3, messages=second_messages)
    log = merge_logs(as_stored(first, 2, first_messages), as_stored(second, 3, second_messages))
    expected = expected_scan(log)
    for listed in [f"{first},{second}", f"{second},{first}"]:
        assert scan(con, f"kafka_scan('{listed}', brokers := '{brokers}')") == expected
        assert offsets(con, f"kafka_offsets('{listed}', brokers := '{brokers}')") == (
            expected_offsets(log)
        )
    call = f"('{first},{second}', brokers := '{brokers}', partitions := [1])"
    assert scan(con, f"kafka_scan{call}") == expected_scan(only_partitions(log, [1]))
    assert offsets(con, f"kafka_offsets{call}") == expected_offsets(only_partitions(log, [1]))


# kafka_offsets gives exactly the offsets kafka_scan reads with the same arguments.
def test_offsets_match_scan(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    messages = shuffled_times(60, 4, seed=7)
    topic = topics.create("preview", partitions=4, messages=messages)
    start_ms, cutoff_ms = messages[10].timestamp_ms, messages[50].timestamp_ms
    for arguments in [
        "",
        ", policy := 'latest'",
        f", start := {tstz(start_ms)}",
        f", cutoff := {tstz(cutoff_ms)}",
        f", start := {tstz(start_ms)}, cutoff := {tstz(cutoff_ms)}, partitions := [1, 3]",
        ", lookback := INTERVAL 100000 DAYS",
    ]:
        call = f"('{topic}', brokers := '{brokers}'{arguments})"
        previews = offsets(con, f"kafka_offsets{call}")
        rows = scan(con, f"kafka_scan{call}")
        read = {
            (topic, partition): [r.offset for r in rows if r.partition == partition]
            for (_, partition, *_) in previews
        }
        assert read == {
            (topic, partition): list(range(start, stop))
            for (_, partition, start, stop, _) in previews
        }, arguments
        assert all(count == stop - start for (*_, start, stop, count) in previews)
        assert {r.partition for r in rows} <= {row[1] for row in previews}


# In Python, SELECT * gives the documented columns and plain values: tz-aware UTC datetimes
# (milliseconds kept), bytes or None for key and value, headers as a list of dicts.
def test_python_values(con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str) -> None:
    messages = [
        Message(0, b"k0", b"v0", BASE_TIMESTAMP_MS + 123, [("h", b"1"), ("h", None)]),
        Message(1, None, None, BASE_TIMESTAMP_MS + 1_000),
        Message(0, b"", b"", BASE_TIMESTAMP_MS + 2_999, [("", b"")]),
    ]
    topic = topics.create("python", partitions=2, messages=messages)
    con.execute("SET TimeZone = 'UTC'")
    relation = con.sql(f"SELECT * FROM kafka_scan('{topic}', brokers := '{brokers}')")
    assert relation.columns == list(BATCH_COLUMNS)
    assert [str(t) for t in relation.types[:4]] == [
        "VARCHAR",
        "INTEGER",
        "BIGINT",
        "TIMESTAMP WITH TIME ZONE",
    ]
    assert [str(t) for t in relation.types[5:]] == [
        "BLOB",
        "BLOB",
        'STRUCT("key" VARCHAR, "value" BLOB)[]',
    ]
    rows = relation.fetchall()
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    ms = datetime.timedelta(milliseconds=1)
    assert rows == [
        (
            topic,
            0,
            0,
            start + 123 * ms,
            "CreateTime",
            b"k0",
            b"v0",
            [{"key": "h", "value": b"1"}, {"key": "h", "value": None}],
        ),
        (topic, 1, 0, start + 1000 * ms, "CreateTime", None, None, []),
        (topic, 0, 1, start + 2999 * ms, "CreateTime", b"", b"", [{"key": "", "value": b""}]),
    ]
    for row in rows:
        moment = row[3]
        assert isinstance(moment, datetime.datetime)
        assert moment.utcoffset() == datetime.timedelta(0)
        assert isinstance(row[5], bytes | None)
        assert isinstance(row[6], bytes | None)


# The same scan run again returns identical rows in an identical order, also when fetching is
# tuned differently (tiny fetches, a small memory budget): the order never depends on timing.
def test_scan_is_deterministic(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    rng = random.Random(8)
    messages = [
        Message(
            rng.randrange(12),
            f"k{i}".encode(),
            rng.randbytes(rng.randrange(0, 600)),
            BASE_TIMESTAMP_MS + 1000 * (i // 40),  # 40 messages share each timestamp
        )
        for i in range(2000)
    ]
    topic = topics.create("again", partitions=12, messages=messages)
    expected = expected_scan(as_stored(topic, 12, messages))
    call = f"kafka_scan('{topic}', brokers := '{brokers}'"
    first = scan(con, call + ")")
    second = scan(con, call + ")")
    tiny_fetches = scan(
        con, call + ", config := MAP {'max.partition.fetch.bytes': '1024', 'client.id': 'tiny'})"
    )
    small_budget = scan(con, call + ", max_buffer_bytes := 1048576)")
    assert first == expected
    assert second == expected
    assert tiny_fetches == expected
    assert small_budget == expected
