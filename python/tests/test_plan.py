"""kafkars.plan, kafkars.read_range and OffsetRange: a plan resolved once reads exactly its
ranges, anywhere, ending cleanly on transactional and compacted logs."""

from __future__ import annotations

import pickle
import time

import pyarrow as pa
import pytest
from confluent_kafka import IsolationLevel

import kafkars
from kafkars import OffsetRange, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, round_robin
from testkit.scan import Log, Record, as_stored, batch_records, read_back

SECOND = 1000


def config(brokers: str) -> dict[str, str]:
    return {"bootstrap.servers": brokers}


def read_all(brokers: str, offset_range: OffsetRange, **kwargs) -> list[Record]:
    """Every record of ``offset_range``, in the order read, checked to end within 30 s."""
    started = time.monotonic()
    records = [
        record
        for batch in kafkars.read_range(config(brokers), offset_range, **kwargs)
        for record in batch_records(batch)
    ]
    assert time.monotonic() - started < 30, "the read waited for its timeout"
    return records


def in_range(log: Log, offset_range: OffsetRange) -> list[Record]:
    return [
        r
        for r in log[(offset_range.topic, offset_range.partition)]
        if offset_range.start <= r.offset < offset_range.stop
    ]


# A plan covers every partition from the log start to its end; reading each range returns
# exactly the records at those offsets, in offset order, with every field as produced.
def test_plan_and_read_every_range(topics: TopicFactory, brokers: str) -> None:
    messages = [
        Message(i % 3, f"k{i}".encode(), f"v{i}".encode(), BASE_TIMESTAMP_MS + i * SECOND,
                [("n", str(i).encode()), ("n", None)])
        for i in range(30)
    ]  # fmt: skip
    topic = topics.create("plan", partitions=3, messages=messages)
    log = as_stored(topic, 3, messages)
    planned = kafkars.plan(config(brokers), [SourceTopic.from_earliest(topic)])
    assert planned == [OffsetRange(topic, p, 0, 10) for p in range(3)]
    for offset_range in planned:
        assert read_all(brokers, offset_range) == in_range(log, offset_range)
    # A piece in the middle, in batches of 3 rows.
    piece = OffsetRange(topic, 1, 4, 9)
    batches = list(kafkars.read_range(config(brokers), piece, batch_size=3))
    assert [b.num_rows for b in batches] == [3, 2]
    assert [r for b in batches for r in batch_records(b)] == in_range(log, piece)
    # An empty range yields nothing, and still tells the schema.
    empty = kafkars.read_range(config(brokers), OffsetRange(topic, 0, 10, 10), ["key", "offset"])
    assert empty.schema == pa.schema(
        [pa.field("key", pa.binary()), pa.field("offset", pa.int64(), nullable=False)]
    )
    assert list(empty) == []


# A cutoff stops each partition before its first record at or after it; split_size cuts the
# ranges into consecutive pieces that together read the same records.
def test_plan_cutoff_and_split(topics: TopicFactory, brokers: str) -> None:
    messages = round_robin(40, 2)  # partition p gets every other second
    topic = topics.create("split", partitions=2, messages=messages)
    log = as_stored(topic, 2, messages)
    cutoff = BASE_TIMESTAMP_MS + 21 * SECOND  # messages 0..20: 11 in partition 0, 10 in 1
    source = [SourceTopic.from_earliest(topic)]
    assert kafkars.plan(config(brokers), source, cutoff_ms=cutoff) == [
        OffsetRange(topic, 0, 0, 11),
        OffsetRange(topic, 1, 0, 10),
    ]
    pieces = kafkars.plan(config(brokers), source, split_size=7)
    assert pieces == [
        OffsetRange(topic, 0, 0, 7),
        OffsetRange(topic, 0, 7, 14),
        OffsetRange(topic, 0, 14, 20),
        OffsetRange(topic, 1, 0, 7),
        OffsetRange(topic, 1, 7, 14),
        OffsetRange(topic, 1, 14, 20),
    ]
    read = [r for piece in pieces for r in read_all(brokers, piece)]
    assert read == log[(topic, 0)] + log[(topic, 1)]
    # workers: pieces of at least 100,000 offsets, so this small topic stays whole.
    assert kafkars.plan(config(brokers), source, workers=8) == [
        OffsetRange(topic, 0, 0, 20),
        OffsetRange(topic, 1, 0, 20),
    ]


# columns: only the fields asked for, in the order asked; an empty projection still counts
# rows.
def test_read_range_columns(topics: TopicFactory, brokers: str) -> None:
    messages = round_robin(6, 1)
    topic = topics.create("columns", messages=messages)
    offset_range = OffsetRange(topic, 0, 0, 6)
    [batch] = list(kafkars.read_range(config(brokers), offset_range, ["value", "offset"]))
    assert batch.schema.names == ["value", "offset"]
    assert batch.column("offset").to_pylist() == list(range(6))
    assert batch.column("value").to_pylist() == [m.value for m in messages]
    [batch] = list(kafkars.read_range(config(brokers), offset_range, []))
    assert (batch.num_rows, batch.num_columns) == (6, 0)
    [batch] = list(kafkars.read_range(config(brokers), offset_range, ["partition"]))
    assert batch.schema == pa.schema([pa.field("partition", pa.int32(), nullable=False)])


# OffsetRange round-trips through JSON (one and a list) and pickle, and validates itself.
def test_offset_range_json_and_pickle() -> None:
    ranges = [OffsetRange("events", 0, 0, 10), OffsetRange("events", 1, 5, 5)]
    assert OffsetRange.from_json(ranges[0].to_json()) == ranges[0]
    assert ranges[0].to_json() == '{"topic": "events", "partition": 0, "start": 0, "stop": 10}'
    text = OffsetRange.list_to_json(ranges)
    assert OffsetRange.list_from_json(text) == ranges
    assert pickle.loads(pickle.dumps(ranges)) == ranges
    assert ranges[0].offsets == 10
    assert hash(ranges[0]) == hash(OffsetRange("events", 0, 0, 10))
    with pytest.raises(ValueError, match=r"^invalid start: expected a number from 0 to "
                       r"9223372036854775807, found -1 \(topic 'events'\)$"):  # fmt: skip
        OffsetRange("events", 0, -1, 10)
    with pytest.raises(ValueError, match=r"^invalid stop: expected an offset at or after start 9, "
                       r"found 3 \(topic 'events' partition 2\)$"):  # fmt: skip
        OffsetRange("events", 2, 9, 3)
    with pytest.raises(TypeError, match=r"^partition must be an int, not str$"):
        OffsetRange("events", "0", 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected exactly the keys topic, partition, start"):
        OffsetRange.from_json('{"topic": "events", "partition": 0, "start": 0}')
    with pytest.raises(ValueError, match=r"^a plan must be a JSON array of ranges, not dict$"):
        OffsetRange.list_from_json('{"topic": "events"}')


# Bad inputs: each error names the parameter, topic, partition or offset concerned.
def test_read_range_bad_inputs(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("bad", partitions=2, messages=round_robin(10, 2))
    cfg = config(brokers)
    with pytest.raises(ValueError, match=(
        rf"^invalid ranges: partition 7 does not exist in topic '{topic}', which has "
        r"partitions 0\.\.1$"
    )):  # fmt: skip
        kafkars.read_range(cfg, OffsetRange(topic, 7, 0, 1))
    with pytest.raises(kafkars.KafkarsError, match=(
        rf"^topic '{topic}-missing' does not exist on Kafka brokers {brokers}$"
    )):  # fmt: skip
        kafkars.read_range(cfg, OffsetRange(f"{topic}-missing", 0, 0, 1))
    with pytest.raises(ValueError, match=(
        rf"^invalid ranges: the stop offset 9 of topic '{topic}' partition 0 is past the end of "
        r"the log \(5\)$"
    )):  # fmt: skip
        kafkars.read_range(cfg, OffsetRange(topic, 0, 2, 9))
    with pytest.raises(ValueError, match=(
        r"^invalid columns: unknown column 'size'; the columns are topic, partition, offset, "
        r"timestamp, timestamp_type, key, value, headers$"
    )):  # fmt: skip
        kafkars.read_range(cfg, OffsetRange(topic, 0, 0, 5), ["offset", "size"])
    with pytest.raises(ValueError, match=r"^invalid columns: column 'key' is named twice$"):
        kafkars.read_range(cfg, OffsetRange(topic, 0, 0, 5), ["key", "key"])
    positive = r"expected a positive number, found 0$"
    with pytest.raises(ValueError, match=r"^invalid batch_size: " + positive):
        kafkars.read_range(cfg, OffsetRange(topic, 0, 0, 5), batch_size=0)
    with pytest.raises(TypeError, match=r"^range must be an OffsetRange"):
        kafkars.read_range(cfg, (topic, 0, 0, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^invalid split_size: " + positive):
        kafkars.plan(cfg, [SourceTopic.from_earliest(topic)], split_size=0)
    with pytest.raises(kafkars.KafkarsError, match=rf"^topic '{topic}-x' does not exist"):
        kafkars.plan(cfg, [SourceTopic.from_earliest(f"{topic}-x")])


# A range whose start retention deleted is an error naming topic, partition, the offset asked
# for and the log start, not a silent jump.
def test_read_range_start_below_log_start(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("deleted", messages=round_robin(10, 1))
    topics.delete_records(topic, 0, 4)
    with pytest.raises(ValueError, match=(
        rf"^invalid ranges: the start offset 2 of topic '{topic}' partition 0 is below the log "
        r"start 4: retention deleted offsets 2\.\.3; use on_missing := 'skip' to start at the log "
        r"start$"
    )):  # fmt: skip
        kafkars.read_range(config(brokers), OffsetRange(topic, 0, 2, 8))
    assert [r.offset for r in read_all(brokers, OffsetRange(topic, 0, 4, 8))] == [4, 5, 6, 7]


# A transactional topic: aborted records and markers are absent, and a range that ends on a
# commit or abort marker, or inside an aborted transaction, ends at once.
def test_read_range_transactions(topics: TopicFactory, brokers: str) -> None:
    def batch(name: str, count: int, second: int) -> list[Message]:
        return [
            Message(0, f"{name}-{i}".encode(), f"{name} {i}".encode(),
                    BASE_TIMESTAMP_MS + (second + i) * SECOND)
            for i in range(count)
        ]  # fmt: skip

    transactions = [
        (batch("t1", 3, 0), True),  # offsets 0-2, marker 3
        (batch("t2", 4, 10), False),  # offsets 4-7 aborted, marker 8
        (batch("t3", 2, 20), True),  # offsets 9-10, marker 11
        (batch("t4", 2, 30), False),  # offsets 12-13 aborted, marker 14
    ]
    topic = topics.create("txn")
    topics.produce_transactions(topic, transactions)
    assert topics.end_offsets(topic, IsolationLevel.READ_COMMITTED) == {0: 15}
    log = read_back(brokers, topic)
    assert [r.offset for r in log[(topic, 0)]] == [0, 1, 2, 9, 10]
    [whole] = kafkars.plan(config(brokers), [SourceTopic.from_earliest(topic)])
    assert whole == OffsetRange(topic, 0, 0, 15)
    assert read_all(brokers, whole) == log[(topic, 0)]
    for start, stop, offsets in [
        (0, 4, [0, 1, 2]),  # ends on t1's commit marker
        (3, 9, []),  # a marker and an aborted transaction: nothing, and done
        (4, 11, [9, 10]),
        (9, 12, [9, 10]),  # ends on t3's marker
        (11, 15, []),  # ends in t4's abort marker, the end of the log
    ]:
        got = read_all(brokers, OffsetRange(topic, 0, start, stop))
        assert [r.offset for r in got] == offsets, (start, stop)
    # Split into pieces of 2: together exactly the committed records.
    pieces = kafkars.plan(config(brokers), [SourceTopic.from_earliest(topic)], split_size=2)
    assert len(pieces) == 8
    assert [r for piece in pieces for r in read_all(brokers, piece)] == log[(topic, 0)]


def wait_for_compaction(brokers: str, topic: str, offsets: list[int], timeout: float = 60) -> Log:
    """Read ``topic`` back until the cleaner has left exactly ``offsets``; fail otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        log = read_back(brokers, topic)
        got = [r.offset for r in log[(topic, 0)]]
        if got == offsets:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic} not compacted in {timeout}s: offsets {got}")
        time.sleep(0.5)


# A compacted topic: ranges whose last offsets were compacted away end at once, and pieces of
# a split plan read exactly what the cleaner left.
def test_read_range_compacted(topics: TopicFactory, brokers: str) -> None:
    compaction = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "86400000",
    }
    topic = topics.create("compacted", config=compaction)
    rounds = []
    for round_ in range(3):
        messages = [
            Message(0, f"key{i}".encode(), f"round {round_} value {i}".encode(),
                    BASE_TIMESTAMP_MS + (60 * round_ + i) * SECOND)
            for i in range(4)
        ]  # fmt: skip
        rounds.append(messages)
        topics.produce(topic, messages)
    last = [Message(0, b"last", b"end", BASE_TIMESTAMP_MS + 3600 * SECOND)]
    topics.produce(topic, last)
    # Offsets 0-11 hold keys 0-3 three times; compaction keeps the last round (8-11), and 12.
    log = wait_for_compaction(brokers, topic, [8, 9, 10, 11, 12])
    [whole] = kafkars.plan(config(brokers), [SourceTopic.from_earliest(topic)])
    assert whole == OffsetRange(topic, 0, 0, 13)
    assert read_all(brokers, whole) == log[(topic, 0)]
    assert read_all(brokers, OffsetRange(topic, 0, 0, 8)) == []  # all compacted away
    assert [r.offset for r in read_all(brokers, OffsetRange(topic, 0, 3, 10))] == [8, 9]
    pieces = kafkars.plan(config(brokers), [SourceTopic.from_earliest(topic)], split_size=3)
    assert [r for piece in pieces for r in read_all(brokers, piece)] == log[(topic, 0)]
    assert (
        as_stored(topic, 1, [m for r in rounds for m in r] + last)[(topic, 0)][8:]
        == log[(topic, 0)]
    )
