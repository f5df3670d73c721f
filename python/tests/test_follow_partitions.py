"""Partitions added to a topic, and topics created that match a pattern, while they are read:
follow mode (ConsumerManager, kafka_scan with follow := true, ordered or not) reads them from
their first message; a bounded scan keeps the partitions it resolved."""

from __future__ import annotations

import time
import uuid

import duckdb
import pytest

import kafkars
from kafkars import ConsumerManager, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, now_ms, round_robin
from testkit.scan import (
    SCAN_COLUMNS,
    BackgroundQuery,
    Record,
    as_stored,
    by_position,
    expected_scan,
    poll_count,
    poll_until_live,
    scan_rows,
)

#: The refresh interval of these tests: short, to keep them fast.
REFRESH_MS = 500
#: How soon after its acknowledgement a message in a new partition must come out: the next
#: look for partitions (up to one interval), its log start lookup and the first fetch, with
#: room for a busy machine.
NEW_PARTITION_LATENCY_S = 6 * REFRESH_MS / 1000


def config(brokers: str) -> dict[str, str]:
    return {"bootstrap.servers": brokers}


def live_messages(partition: int, count: int, prefix: str, stamp: int) -> list[Message]:
    """``count`` messages for ``partition`` with keys ``<prefix><i>``, stamped from ``stamp``."""
    return [Message(partition, f"{prefix}{i}".encode(), b"live", stamp + i) for i in range(count)]


def records(topic: str, offset: int, messages: list[Message]) -> list[Record]:
    """``messages`` (all of one partition) as they lie in ``topic`` from ``offset`` on."""
    return [
        Record(topic, m.partition, offset + i, m.timestamp_ms, m.key, m.value)
        for i, m in enumerate(messages)
    ]


# A live manager over a one-partition topic reads a partition added to it from its first
# message, within a few refresh intervals of the message's acknowledgement, and keeps
# reading the old one; partition_state lists the new partition with its start offset.
def test_manager_reads_partition_added_when_live(topics: TopicFactory, brokers: str) -> None:
    history = round_robin(5, 1)
    topic = topics.create("grow", partitions=1, messages=history)
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        metadata_refresh_ms=REFRESH_MS,
    ) as manager:
        polled = poll_until_live(manager)
        assert polled.records == expected_scan(as_stored(topic, 1, history))
        assert [s["partition"] for s in manager.partition_state()] == [0]

        topics.add_partitions(topic, 2)
        new = live_messages(1, 3, "new", now_ms())
        topics.produce(topic, new)
        acknowledged = time.monotonic()
        polled = poll_count(manager, 8, limit_s=30, timeout_ms=100, polled=polled)
        latency = time.monotonic() - acknowledged
        assert polled.records[5:] == records(topic, 0, new)
        assert latency < NEW_PARTITION_LATENCY_S, latency

        old = live_messages(0, 2, "old", now_ms())
        topics.produce(topic, old)
        polled = poll_count(manager, 10, limit_s=30, timeout_ms=100, polled=polled)
        assert polled.records[8:] == records(topic, 5, old)
        assert len(polled.records) == 10

        state = manager.partition_state()
        keys = ("topic", "partition", "start", "stop", "position")
        offsets = [tuple(s[key] for key in keys) for s in state]
        assert offsets == [(topic, 0, 0, 5, 7), (topic, 1, 0, 0, 3)]
        assert all(s["live"] for s in state)
        assert manager.is_live()


# A partition found while the manager still replays joins with nothing to replay: the replay
# stays exactly the resolved partition's, although the new partition's messages are stamped
# before it; they come once the manager is live.
def test_manager_partition_added_during_replay_waits_for_live(
    topics: TopicFactory, brokers: str
) -> None:
    history = round_robin(5, 1)
    topic = topics.create("replaying", partitions=1, messages=history)
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        batch_size=1,
        metadata_refresh_ms=REFRESH_MS,
    ) as manager:
        topics.add_partitions(topic, 2)
        older = live_messages(1, 3, "older", BASE_TIMESTAMP_MS - 60_000)
        topics.produce(topic, older)
        # Nothing was polled yet, so nothing was read: the first poll, a refresh interval
        # after the manager was made, looks for partitions before reading the replay.
        time.sleep(2 * REFRESH_MS / 1000)
        first = poll_count(manager, 1, limit_s=30, timeout_ms=100)
        assert first.records == expected_scan(as_stored(topic, 1, history))[:1]
        assert not manager.is_live()
        state = manager.partition_state()
        offsets = [(s["partition"], s["start"], s["stop"], s["position"], s["live"]) for s in state]
        assert offsets == [(0, 0, 5, 1, False), (1, 0, 0, 0, True)]
        polled = poll_until_live(manager, polled=first)
        assert polled.records[:5] == expected_scan(as_stored(topic, 1, history))
        polled = poll_count(manager, 8, limit_s=30, timeout_ms=100, polled=polled)
        assert polled.records[5:] == records(topic, 0, older)
        assert len(polled.records) == 8


FOLLOW = f"follow := true, metadata_refresh := INTERVAL '{REFRESH_MS} ms'"


# kafka_scan(follow := true), ordered or not, reads a partition added while it waits for
# new messages: a LIMIT reached only with the new partition's rows returns them, exactly,
# after the replay.
@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_follow_scan_reads_partition_added_when_live(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str, ordered: bool
) -> None:
    history = round_robin(5, 1)
    topic = topics.create("grow", partitions=1, messages=history)
    query = BackgroundQuery(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', {FOLLOW}, "
        f"ordered := {str(ordered).lower()}) LIMIT 8",
    )
    time.sleep(1.5)
    assert query.running(), "the query returned before 8 messages existed"
    topics.add_partitions(topic, 2)
    new = live_messages(1, 3, "new", now_ms())
    topics.produce(topic, new)
    acknowledged = time.monotonic()
    rows = query.records(limit_s=30)
    assert query.finished_at is not None
    assert query.finished_at - acknowledged < NEW_PARTITION_LATENCY_S
    assert rows[:5] == expected_scan(as_stored(topic, 1, history))
    assert rows[5:] == records(topic, 0, new)
    assert con.sql("SELECT 42").fetchall() == [(42,)]


# A bounded scan reads the partitions it resolved: a partition added (and written to) while
# it runs is not read, ordered or not; the scan ends at the old partition's stop.
@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_bounded_scan_keeps_resolved_partitions(
    topics: TopicFactory, brokers: str, ordered: bool
) -> None:
    history = round_robin(3000, 1, step_ms=1)
    topic = topics.create("fixed", partitions=1, messages=history)
    con = kafkars.connect()
    reader = con.sql(
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', "
        f"ordered := {str(ordered).lower()}, max_buffer_bytes := 65536)"
    ).to_arrow_reader(batch_size=100)
    first = reader.read_next_batch()
    topics.add_partitions(topic, 2)
    topics.produce(topic, live_messages(1, 3, "late", BASE_TIMESTAMP_MS - 60_000))
    time.sleep(1.0)
    batches = [first, *reader]
    rows = scan_rows(
        row for batch in batches for row in zip(*batch.to_pydict().values(), strict=True)
    )
    expected = expected_scan(as_stored(topic, 1, history))
    assert (rows if ordered else by_position(rows)) == expected
    con.close()


def pattern_token() -> str:
    """A hint that only this test's topic names share (the factory names topics
    ``<prefix>-<hint>-<random>``)."""
    return f"pattern{uuid.uuid4().hex[:10]}"


# A live manager reading topics by pattern reads a matching topic created later from its
# first message, and lists it after the topic matched at the start; a topic that does not
# match stays unread.
def test_manager_reads_pattern_topic_created_when_live(topics: TopicFactory, brokers: str) -> None:
    token = pattern_token()
    history = round_robin(3, 1)
    first = topics.create(f"{token}-a", messages=history)
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_pattern(f"-{token}-[a-z]-")],
        metadata_refresh_ms=REFRESH_MS,
    ) as manager:
        polled = poll_until_live(manager)
        assert polled.records == expected_scan(as_stored(first, 1, history))
        topics.create("unrelated", messages=round_robin(2, 1))
        new = live_messages(0, 2, "new", now_ms())
        second = topics.create(f"{token}-b", messages=new)
        acknowledged = time.monotonic()
        polled = poll_count(manager, 5, limit_s=30, timeout_ms=100, polled=polled)
        latency = time.monotonic() - acknowledged
        assert polled.records[3:] == records(second, 0, new)
        assert latency < NEW_PARTITION_LATENCY_S, latency
        state = manager.partition_state()
        listed = [(s["topic"], s["partition"], s["start"], s["stop"], s["position"]) for s in state]
        assert listed == [(first, 0, 0, 3, 3), (second, 0, 0, 0, 2)]


# kafka_scan(NULL, topic_pattern := ..., follow := true), ordered or not, reads a matching
# topic created while it waits.
@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_follow_scan_reads_pattern_topic_created_when_live(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str, ordered: bool
) -> None:
    token = pattern_token()
    history = round_robin(3, 1)
    first = topics.create(f"{token}-a", messages=history)
    query = BackgroundQuery(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan(NULL, topic_pattern := '-{token}-[a-z]-', "
        f"brokers := '{brokers}', {FOLLOW}, ordered := {str(ordered).lower()}) LIMIT 5",
    )
    time.sleep(1.5)
    assert query.running(), "the query returned before 5 messages existed"
    topics.create("unrelated", messages=round_robin(2, 1))
    new = live_messages(0, 2, "new", now_ms())
    second = topics.create(f"{token}-b", messages=new)
    rows = query.records(limit_s=30)
    assert rows[:3] == expected_scan(as_stored(first, 1, history))
    assert rows[3:] == records(second, 0, new)
