"""ConsumerManager replays history in strict order, then follows: exact rows, order, liveness.

The order model is :func:`testkit.scan.expected_scan`, the same one ``kafka_scan`` is held to:
until ``is_live()``, the batches concatenated are exactly the k-way merge by
``(timestamp, topic, partition, offset)`` of every partition's ``[start, stop)``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import kafkars
from kafkars import ConsumerManager, KafkarsError, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, now_ms, shuffled_times
from testkit.scan import (
    Polled,
    Record,
    as_stored,
    batch_records,
    by_position,
    check_batch_schema,
    check_partition_order,
    expected_offsets,
    expected_scan,
    fetch,
    merge_logs,
    poll_count,
    poll_until,
    poll_until_live,
    read_back,
    scan,
    tstz,
    window,
)

MINUTE = 60_000
HOUR = 60 * MINUTE


def config(brokers: str, **extra: str) -> dict[str, str]:
    return {"bootstrap.servers": brokers, **extra}


def check_replay(polled: Polled, expected: list[Record]) -> None:
    """The first records are exactly ``expected`` in order, and ``is_live()`` said False
    after every poll that had not yet returned all of them."""
    assert polled.records[: len(expected)] == expected
    assert all(not live for count, live in polled.live_after if count < len(expected))
    first_live = polled.first_live()
    assert first_live is not None
    assert first_live >= len(expected)


# The seed's quick example, verbatim but for the broker and the topic names.
ORIGIN_EXAMPLE = "\n".join(
    [
        "import time",
        "from kafkars import ConsumerManager, SourceTopic",
        'topics = [SourceTopic.from_earliest("events"), '
        'SourceTopic.from_relative_time("metrics", 3600_000)]',
        'manager = ConsumerManager(config={"bootstrap.servers": "localhost:9092", '
        '"group.id": "my-consumer-group"}, topics=topics, '
        "cutoff_ms=int(time.time() * 1000), batch_size=10_000)",
        "while True:",
        "    batch = manager.poll(timeout_ms=1000)",
        "    if batch.num_rows > 0:",
        "        df = batch.to_pandas()",
        '        print(f"Received {len(df)} messages")',
        "    if manager.is_live():",
        '        print("Caught up to real-time")',
        "        break",
        "",
    ]
)


def origin_example(brokers: str, events: str, metrics: str) -> str:
    """The example with the broker and this test's topics swapped in."""
    for original in ['"localhost:9092"', '"events"', '"metrics"']:
        assert ORIGIN_EXAMPLE.count(original) == 1, original
    return (
        ORIGIN_EXAMPLE.replace('"localhost:9092"', f'"{brokers}"')
        .replace('"events"', f'"{events}"')
        .replace('"metrics"', f'"{metrics}"')
    )


def example_topics(topics: TopicFactory, brokers: str) -> tuple[str, str, list[Record]]:
    """``events`` (3 partitions: history from 2024 and from the last two hours) and
    ``metrics`` (2 partitions: one message every 7 minutes from 119 minutes ago up to now),
    and what the example must receive: all events, the metrics of the last hour, merged."""
    now = now_ms()
    events_messages = shuffled_times(20, 3, seed=21, prefix="e") + [
        Message(j % 3, f"recent{j}".encode(), b"event", now - 110 * MINUTE + j * 11 * MINUTE)
        for j in range(10)
    ]
    metrics_messages = [
        Message(j % 2, f"m{j}".encode(), f'{{"cpu": {j}}}'.encode(), now - (119 - 7 * j) * MINUTE)
        for j in range(18)
    ]
    events = topics.create("events", partitions=3, messages=events_messages)
    metrics = topics.create("metrics", partitions=2, messages=metrics_messages)
    events_log = as_stored(events, 3, events_messages)
    metrics_log = as_stored(metrics, 2, metrics_messages)
    assert read_back(brokers, [events, metrics]) == merge_logs(events_log, metrics_log)
    # The hour's boundary lies 3 minutes from the nearest metric: 9 of them are in it.
    last_hour = window(metrics_log, start_ms=now - HOUR)
    assert sum(len(records) for records in last_hour.values()) == 9
    expected = expected_scan(merge_logs(events_log, last_hour))
    assert len(expected) == 39
    assert {r.topic for r in expected[-5:]} == {events, metrics}  # the topics interleave
    return events, metrics, expected


# The seed's quick example, run as a script: it ends, having printed counts adding up to
# every event and the last hour's metrics, and "Caught up to real-time".
def test_origin_example_runs(topics: TopicFactory, brokers: str) -> None:
    events, metrics, expected = example_topics(topics, brokers)
    result = subprocess.run(
        [sys.executable, "-c", origin_example(brokers, events, metrics)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "Caught up to real-time", result.stdout
    counts = [int(line.split()[1]) for line in lines[:-1]]
    assert lines[:-1] == [f"Received {count} messages" for count in counts]
    assert sum(counts) == len(expected)
    # Its group.id committed nothing.
    assert topics.committed_offsets("my-consumer-group", events, 3) == [-1001] * 3
    assert topics.committed_offsets("my-consumer-group", metrics, 2) == [-1001] * 2


class RecordingManager:
    """A real ConsumerManager whose batches and ``is_live()`` answers are recorded; polling
    fails after a time limit, so that an example that never goes live fails the test."""

    real: Any = ConsumerManager

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.manager = self.real(*args, **kwargs)
        self.polled = Polled()
        self.deadline = time.monotonic() + 45

    def poll(self, timeout_ms: int) -> pa.RecordBatch:
        assert time.monotonic() < self.deadline, "the example did not go live in time"
        batch = self.manager.poll(timeout_ms=timeout_ms)
        self.polled.records.extend(batch_records(batch))
        self.polled.sizes.append(batch.num_rows)
        return batch

    def is_live(self) -> bool:
        live = self.manager.is_live()
        self.polled.live_after.append((len(self.polled.records), live))
        return live


# The same example run in this process: the rows it receives are exactly every event and the
# last hour's metrics, in timestamp order, and it stops at the first is_live().
def test_origin_example_rows(
    topics: TopicFactory,
    brokers: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events, metrics, expected = example_topics(topics, brokers)
    monkeypatch.setattr(kafkars, "ConsumerManager", RecordingManager)
    namespace: dict[str, Any] = {"__name__": "__example__"}
    exec(origin_example(brokers, events, metrics), namespace)
    recording = namespace["manager"]
    assert isinstance(recording, RecordingManager)
    try:
        polled = recording.polled
        assert polled.records == expected
        check_replay(polled, expected)
        assert polled.live_after[-1] == (len(expected), True)
        assert all(size <= 10_000 for size in polled.sizes)
        assert [r.timestamp_type for r in polled.records] == ["CreateTime"] * len(expected)
        printed = capsys.readouterr().out.splitlines()
        assert printed[-1] == "Caught up to real-time"
        assert printed[:-1] == [f"Received {size} messages" for size in polled.sizes if size]
    finally:
        recording.manager.close()


# Messages written after the manager was made (past the stop offsets) wait until the replay is
# complete, even ones stamped earlier than all history in a partition whose replay ended
# long before the others'; afterwards they all arrive.
def test_manager_replay_holds_back_later_messages(topics: TopicFactory, brokers: str) -> None:
    # Partition 0 holds the 5 earliest messages: its replay is over after the first batch.
    early = [Message(0, f"early{i}".encode(), b"early", BASE_TIMESTAMP_MS + i) for i in range(5)]
    rest = [
        Message(m.partition + 1, m.key, m.value, m.timestamp_ms + 10_000)
        for m in shuffled_times(55, 2, seed=22)
    ]
    messages = early + rest
    topic = topics.create("later", partitions=3, messages=messages)
    log = as_stored(topic, 3, messages)
    assert read_back(brokers, topic) == log
    expected = expected_scan(log)
    assert [r.partition for r in expected[:5]] == [0] * 5
    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=5
    ) as manager:
        assert not manager.is_live()
        polled = poll_until(manager, lambda p: len(p.records) >= 5)
        late = [
            Message(p, f"late{p}-{j}".encode(), b"late", stamp)
            for p in range(3)
            for j, stamp in enumerate([BASE_TIMESTAMP_MS - 86_400_000, now_ms()])
        ]
        topics.produce(topic, late)
        time.sleep(1)  # time to fetch the late messages, for a reader that would let them out
        polled = poll_until_live(manager, polled=polled)
        polled = poll_count(manager, 66, polled=polled)
        check_replay(polled, expected)
        assert len(polled.records) == 66
        assert all(size <= 5 for size in polled.sizes)
        after = polled.records[60:]
        assert sorted((r.partition, r.offset, r.key) for r in after) == [
            (p, len(log[(topic, p)]) + j, f"late{p}-{j}".encode())
            for p in range(3)
            for j in range(2)
        ]
        check_partition_order(after)


# is_live() is False after every poll until the last replayed row has been returned, one row
# per poll here, and True once it has.
def test_manager_live_exactly_after_replay(topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(20, 3, seed=34)
    topic = topics.create("one-by-one", partitions=3, messages=messages)
    expected = expected_scan(as_stored(topic, 3, messages))
    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=1
    ) as manager:
        assert not manager.is_live()
        polled = poll_until_live(manager)
        assert polled.records == expected
        assert set(polled.sizes) <= {0, 1}
        check_replay(polled, expected)
        assert polled.first_live() == 20


# cutoff_ms stops each partition before its first message at or after it: those messages come
# only once the replay before the cutoff is complete (and then all of them).
def test_manager_cutoff_then_follows(topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(60, 3, seed=23)
    topic = topics.create("cutoff", partitions=3, messages=messages)
    log = as_stored(topic, 3, messages)
    cutoff_ms = messages[30].timestamp_ms
    expected = expected_scan(window(log, cutoff_ms=cutoff_ms))
    assert 10 < len(expected) < 50
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        cutoff_ms=cutoff_ms,
        batch_size=4,
    ) as manager:
        polled = poll_until_live(manager)
        polled = poll_count(manager, 60, polled=polled)
        check_replay(polled, expected)
        assert len(polled.records) == 60
        after = polled.records[len(expected) :]
        assert by_position(after) == by_position(
            r for records in log.values() for r in records if r not in expected
        )
        check_partition_order(after)


# The seed's loop, `process(batch); if manager.is_live(): break`, processes exactly the
# replay: the poll that returns the last rows before the stop offsets returns no row past a
# stop, however large batch_size is and however much later data already waits in the log,
# and is_live() is True right after it. The replay is every message before each partition's
# stop offset: one stamped before the cutoff but written after a later-stamped one of its
# partition comes after the replay, with the live rows.
def test_manager_poll_never_straddles_the_replay_end(topics: TopicFactory, brokers: str) -> None:
    cutoff_ms = BASE_TIMESTAMP_MS + 40_000
    history = [
        Message(i % 4, f"k{i}".encode(), b"replay", BASE_TIMESTAMP_MS + i * 1000) for i in range(40)
    ]
    later = [Message(i % 4, f"later{i}".encode(), b"live", cutoff_ms + i) for i in range(58)]
    stamped_early = Message(1, b"early", b"stamped before the cutoff", cutoff_ms - 500)
    messages = [*history, *later, stamped_early]
    topic = topics.create("boundary", partitions=4, messages=messages)
    log = as_stored(topic, 4, messages)
    replay = expected_scan(window(log, cutoff_ms=cutoff_ms))
    assert len(replay) == 40
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        cutoff_ms=cutoff_ms,
        batch_size=1000,
    ) as manager:
        processed: list[Record] = []
        for batch in manager:
            processed.extend(batch_records(batch))
            if manager.is_live():
                break
        assert processed == replay
        rest = poll_count(manager, 59)
    assert len(rest.records) == 59
    assert by_position(rest.records) == by_position(
        r for records in log.values() for r in records if r not in replay
    )
    check_partition_order(rest.records)
    [early] = [r for r in rest.records if r.key == b"early"]
    assert (early.partition, early.offset, early.timestamp_ms) == (1, 25, cutoff_ms - 500)


# A poll's batch is inside the memory budget: it holds at most a 32nd of max_buffer_bytes of
# messages (the last one may cross it), however large batch_size is, and the batches together
# are still exactly the replay.
def test_manager_batch_bytes_within_budget(topics: TopicFactory, brokers: str) -> None:
    messages = [
        Message(i % 2, f"k{i}".encode(), bytes([i % 251]) * 10_000, BASE_TIMESTAMP_MS + i)
        for i in range(60)
    ]
    topic = topics.create("batch-bytes", partitions=2, messages=messages)
    expected = expected_scan(as_stored(topic, 2, messages))
    budget = 1 << 20
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        max_buffer_bytes=budget,
        batch_size=10_000,
    ) as manager:
        polled = poll_until_live(manager)
    assert polled.records == expected
    assert 0 < max(polled.sizes) <= budget // 32 // 10_000 + 1, polled.sizes


def mixed_topics(topics: TopicFactory, brokers: str) -> dict[str, Any]:
    """Four topics for the four start policies, and what each contributes to a replay."""
    now = now_ms()
    early = shuffled_times(30, 3, seed=24, prefix="a")
    latest = shuffled_times(10, 2, seed=25, prefix="b")
    stamped = shuffled_times(20, 2, seed=26, prefix="c")
    recent = [
        Message(i % 2, f"d{i}".encode(), f"{m}".encode(), now + m * MINUTE)
        for i, m in enumerate([-170, -130, -95, -70, -50, -35, -20, -5])
    ]
    names = {
        "earliest": topics.create("earliest", partitions=3, messages=early),
        "latest": topics.create("latest", partitions=2, messages=latest),
        "timestamp": topics.create("timestamp", partitions=2, messages=stamped),
        "relative": topics.create("relative", partitions=2, messages=recent),
    }
    logs = {
        "earliest": as_stored(names["earliest"], 3, early),
        "latest": as_stored(names["latest"], 2, latest),
        "timestamp": as_stored(names["timestamp"], 2, stamped),
        "relative": as_stored(names["relative"], 2, recent),
    }
    assert read_back(brokers, list(names.values())) == merge_logs(*logs.values())
    start_ms = stamped[10].timestamp_ms
    replayed = {
        "earliest": logs["earliest"],
        "latest": {tp: [] for tp in logs["latest"]},
        "timestamp": window(logs["timestamp"], start_ms=start_ms),
        "relative": window(logs["relative"], start_ms=now - HOUR),
    }
    return {"names": names, "logs": logs, "start_ms": start_ms, "replayed": replayed}


# One manager with a different start policy per topic (earliest, latest, timestamp,
# relative) replays exactly the model's rows; each topic's rows are what kafka_scan returns
# with that policy; afterwards new messages in the 'latest' topic stream in.
def test_manager_mixed_policies(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    mixed = mixed_topics(topics, brokers)
    names, replayed, start_ms = mixed["names"], mixed["replayed"], mixed["start_ms"]
    expected = expected_scan(merge_logs(*replayed.values()))
    assert {r.topic for r in expected} == {
        names["earliest"],
        names["timestamp"],
        names["relative"],
    }
    relative = [r.value for r in expected if r.topic == names["relative"]]
    assert relative == [b"-50", b"-35", b"-20", b"-5"]
    selection = [
        SourceTopic.from_earliest(names["earliest"]),
        SourceTopic.from_latest(names["latest"]),
        SourceTopic.from_timestamp(names["timestamp"], start_ms),
        SourceTopic.from_relative_time(names["relative"], HOUR),
    ]
    with ConsumerManager(config=config(brokers), topics=selection, batch_size=8) as manager:
        polled = poll_until_live(manager)
        check_replay(polled, expected)
        assert polled.records == expected
        calls = {
            "earliest": f"kafka_scan('{names['earliest']}', brokers := '{brokers}')",
            "latest": (
                f"kafka_scan('{names['latest']}', brokers := '{brokers}', policy := 'latest')"
            ),
            "timestamp": (
                f"kafka_scan('{names['timestamp']}', brokers := '{brokers}', "
                f"start := {tstz(start_ms)})"
            ),
            "relative": (
                f"kafka_scan('{names['relative']}', brokers := '{brokers}', "
                "lookback := INTERVAL 1 HOUR)"
            ),
        }
        for policy, call in calls.items():
            assert scan(con, call) == [r for r in polled.records if r.topic == names[policy]]
        new = [Message(1, b"new-b", b"live", now_ms()), Message(0, b"new-b0", b"live", now_ms())]
        topics.produce(names["latest"], new)
        polled = poll_count(manager, len(expected) + 2, limit_s=10, polled=polled)
        ends = {p: len(mixed["logs"]["latest"][(names["latest"], p)]) for p in range(2)}
        assert sorted((r.topic, r.partition, r.offset, r.key) for r in polled.records[-2:]) == [
            (names["latest"], 0, ends[0], b"new-b0"),
            (names["latest"], 1, ends[1], b"new-b"),
        ]


# With one policy for every topic, a manager returns exactly what kafka_scan('a,b') returns
# with that policy, in the same order.
def test_manager_same_policy_equals_kafka_scan(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    first_messages = shuffled_times(30, 2, seed=27, prefix="a")
    # The same timestamps in the same partitions, and one more partition: ties across topics.
    second_messages = [*first_messages, Message(2, b"b2", b"only b", BASE_TIMESTAMP_MS + 5000)]
    first = topics.create("a", partitions=2, messages=first_messages)
    second = topics.create("b", partitions=3, messages=second_messages)
    log = merge_logs(as_stored(first, 2, first_messages), as_stored(second, 3, second_messages))
    start_ms = first_messages[12].timestamp_ms
    cases = [
        ([SourceTopic.from_earliest(second), SourceTopic.from_earliest(first)], "", log),
        (
            [
                SourceTopic.from_timestamp(first, start_ms),
                SourceTopic.from_timestamp(second, start_ms),
            ],
            f", start := {tstz(start_ms)}",
            window(log, start_ms=start_ms),
        ),
        (
            [
                SourceTopic.from_absolute_time(first, start_ms),
                SourceTopic.from_absolute_time(second, start_ms),
            ],
            f", start := {tstz(start_ms)}",
            window(log, start_ms=start_ms),
        ),
    ]
    for selection, arguments, selected in cases:
        expected = expected_scan(selected)
        assert scan(con, f"kafka_scan('{first},{second}', brokers := '{brokers}'{arguments})") == (
            expected
        )
        with ConsumerManager(config=config(brokers), topics=selection, batch_size=16) as manager:
            polled = poll_until_live(manager)
            check_replay(polled, expected)
            assert polled.records == expected, arguments


# poll never returns more than batch_size rows (7 here, over 100 messages), and the batches
# together are exactly the replay; a poll with nothing ready waits its timeout and returns an
# empty batch of the same schema.
def test_manager_batch_size(topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(100, 4, seed=28)
    topic = topics.create("sizes", partitions=4, messages=messages)
    expected = expected_scan(as_stored(topic, 4, messages))
    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=7
    ) as manager:
        polled = poll_until_live(manager)
        check_replay(polled, expected)
        assert polled.records == expected
        assert max(polled.sizes) == 7
        assert all(0 <= size <= 7 for size in polled.sizes)
        assert len([size for size in polled.sizes if size]) >= 15
        started = time.monotonic()
        empty = manager.poll(timeout_ms=300)
        waited = time.monotonic() - started
        assert isinstance(empty, pa.RecordBatch)
        assert empty.num_rows == 0
        check_batch_schema(empty.schema)
        assert 0.25 <= waited < 1.5


# poll(timeout_ms=0) never waits, yet polling with it in a loop makes progress: the whole
# replay arrives, in order, and the manager goes live.
def test_manager_poll_zero_timeout(topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(60, 3, seed=29)
    topic = topics.create("nowait", partitions=3, messages=messages)
    expected = expected_scan(as_stored(topic, 3, messages))
    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=10
    ) as manager:
        records = []
        deadline = time.monotonic() + 30
        while not manager.is_live() and time.monotonic() < deadline:
            started = time.monotonic()
            batch = manager.poll(timeout_ms=0)
            assert time.monotonic() - started < 0.2
            records.extend(batch_records(batch))
        assert manager.is_live()
        assert records == expected


# Batches go straight into polars, pandas and duckdb (Arrow PyCapsule / pyarrow), with the
# right values: keys, values, NULLs, headers and UTC millisecond timestamps.
def test_manager_batches_in_dataframes(topics: TopicFactory, brokers: str) -> None:
    messages = [
        Message(i % 2, f"k{i}".encode(), f"v{i}".encode(), BASE_TIMESTAMP_MS + 1000 * i + 7)
        for i in range(30)
    ]
    messages[3] = Message(1, None, None, BASE_TIMESTAMP_MS + 3007, [("h", b"1"), ("h", None)])
    topic = topics.create("frames", partitions=2, messages=messages)
    expected = expected_scan(as_stored(topic, 2, messages))
    batches: list[pa.RecordBatch] = []
    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=10
    ) as manager:
        deadline = time.monotonic() + 30
        while sum(batch.num_rows for batch in batches) < 30:
            assert time.monotonic() < deadline
            batch = manager.poll(timeout_ms=200)
            if batch.num_rows:
                batches.append(batch)
    assert [r for batch in batches for r in batch_records(batch)] == expected
    for batch in batches:
        assert hasattr(batch, "__arrow_c_array__")
        records = batch_records(batch)
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        assert frame.columns == list(batch.schema.names)
        assert frame["offset"].to_list() == [r.offset for r in records]
        assert frame["key"].to_list() == [r.key for r in records]
        assert frame["value"].to_list() == [r.value for r in records]
        assert frame["timestamp"].dtype == pl.Datetime("ms", "UTC")
        assert frame["timestamp"].dt.epoch("ms").to_list() == [r.timestamp_ms for r in records]
        pandas = batch.to_pandas()
        assert list(pandas["partition"]) == [r.partition for r in records]
        assert list(pandas["value"]) == [r.value for r in records]
        epoch = pd.Timestamp(0, tz="UTC")
        assert [
            (moment - epoch) // pd.Timedelta(milliseconds=1) for moment in pandas["timestamp"]
        ] == [r.timestamp_ms for r in records]
        with duckdb.connect() as local:
            assert local.sql(
                'SELECT topic, "partition", "offset", epoch_ms("timestamp"), key, value FROM batch'
            ).fetchall() == [
                (r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value) for r in records
            ]
            assert local.from_arrow(batch).fetchall()[0][2] == records[0].offset
    everything = pa.Table.from_batches(batches)
    nulls = [r for r in expected if r.key is None]
    assert len(nulls) == 1
    with duckdb.connect() as local:
        assert local.sql(
            "SELECT count(*), count(key), sum(len(headers)) FROM everything"
        ).fetchall() == [(30, 29, 2)]
        assert local.sql("SELECT headers FROM everything WHERE key IS NULL").fetchall() == [
            ([{"key": "h", "value": b"1"}, {"key": "h", "value": None}],)
        ]
    frame = pl.from_arrow(everything)
    assert frame.height == 30
    assert frame.filter(pl.col("key").is_null())["headers"].to_list() == [
        [{"key": "h", "value": b"1"}, {"key": "h", "value": None}]
    ]


# `with ConsumerManager(...) as m:` closes it on exit; a closed manager's poll fails with an
# error saying it is closed; close() again is harmless.
def test_manager_context_and_close(topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(12, 2, seed=29)
    topic = topics.create("close", partitions=2, messages=messages)
    expected = expected_scan(as_stored(topic, 2, messages))
    selection = [SourceTopic.from_earliest(topic)]
    with ConsumerManager(config=config(brokers), topics=selection) as manager:
        assert poll_until_live(manager).records == expected
    with pytest.raises((RuntimeError, KafkarsError), match="closed"):
        manager.poll(timeout_ms=100)
    manager.close()
    other = ConsumerManager(config=config(brokers), topics=selection)
    assert poll_until_live(other).records == expected
    other.close()
    other.close()
    with pytest.raises((RuntimeError, KafkarsError), match="closed"):
        other.poll(timeout_ms=100)


# Iterating a manager yields only non-empty batches, the replay first in order, then messages
# produced later, as they come.
@pytest.mark.timeout(60)
def test_manager_iteration(topics: TopicFactory, brokers: str) -> None:
    messages = shuffled_times(25, 3, seed=30)
    topic = topics.create("iterate", partitions=3, messages=messages)
    expected = expected_scan(as_stored(topic, 3, messages))
    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=6
    ) as manager:
        received: list[Record] = []
        batches = iter(manager)
        while len(received) < 25:
            batch = next(batches)
            assert 0 < batch.num_rows <= 6
            received.extend(batch_records(batch))
        assert received == expected
        topics.produce(topic, [Message(2, b"new", b"live", now_ms())])
        [record] = batch_records(next(batches))
        in_partition_2 = len([m for m in messages if m.partition == 2])
        assert (record.partition, record.offset, record.key) == (2, in_partition_2, b"new")


STATE_KEYS = {
    "topic",
    "partition",
    "start",
    "stop",
    "position",
    "buffered_messages",
    "buffered_bytes",
    "paused",
    "live",
}


def offsets_rows(con: duckdb.DuckDBPyConnection, call: str) -> list[tuple]:
    return fetch(con, f"SELECT topic, partition, start_offset, stop_offset FROM {call}")


# partition_state() has one entry per partition in (topic, partition) order, with the
# documented keys; its start and stop are kafka_offsets' for the same selection and cutoff;
# partitions with nothing to replay are live at once, all are live after is_live().
def test_manager_partition_state(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    now = now_ms()
    cutoff_ms = now - 30 * MINUTE
    early = shuffled_times(30, 3, seed=31, prefix="a") + [
        Message(p, f"after{p}".encode(), b"after cutoff", now - 10 * MINUTE) for p in range(3)
    ]
    recent = [
        Message(i % 2, f"r{i}".encode(), f"{m}".encode(), now + m * MINUTE)
        for i, m in enumerate([-150, -90, -45, -20, -5])
    ]
    stamped = shuffled_times(20, 2, seed=32, prefix="c")
    last = shuffled_times(5, 1, seed=33, prefix="d")
    # Created so that the names sort a < b < c < d; listed to the manager out of that order.
    a = topics.create("a-earliest", partitions=3, messages=early)
    b = topics.create("b-relative", partitions=2, messages=recent)
    c = topics.create("c-timestamp", partitions=2, messages=stamped)
    d = topics.create("d-latest", partitions=1, messages=last)
    logs = {
        a: as_stored(a, 3, early),
        b: as_stored(b, 2, recent),
        c: as_stored(c, 2, stamped),
        d: as_stored(d, 1, last),
    }
    start_ms = stamped[8].timestamp_ms
    selection = [
        SourceTopic.from_latest(d),
        SourceTopic.from_earliest(a),
        SourceTopic.from_timestamp(c, start_ms),
        SourceTopic.from_relative_time(b, HOUR),
    ]
    call = "kafka_offsets('{}', brokers := '" + brokers + "', {}cutoff := " + tstz(cutoff_ms) + ")"
    previews = [
        *offsets_rows(con, call.format(a, "")),
        *offsets_rows(con, call.format(b, "lookback := INTERVAL 1 HOUR, ")),
        *offsets_rows(con, call.format(c, f"start := {tstz(start_ms)}, ")),
        *offsets_rows(con, call.format(d, "policy := 'latest', ")),
    ]
    # The previews agree with the model: a stops before its last messages, b starts an hour
    # ago and stops half an hour ago, d has nothing to replay.
    model = [
        *expected_offsets(logs[a], cutoff_ms=cutoff_ms),
        *expected_offsets(logs[b], start_ms=now - HOUR, cutoff_ms=cutoff_ms),
        *expected_offsets(logs[c], start_ms=start_ms, cutoff_ms=cutoff_ms),
        *expected_offsets(logs[d], cutoff_ms=cutoff_ms, latest=True),
    ]
    assert previews == [row[:4] for row in model]
    assert (d, 0, 5, 5, 0) in model
    assert (b, 0, 1, 2) in previews
    assert (b, 1, 1, 1) in previews
    with ConsumerManager(
        config=config(brokers), topics=selection, cutoff_ms=cutoff_ms, batch_size=5
    ) as manager:
        state = manager.partition_state()
        assert isinstance(state, list)
        for entry in state:
            assert set(entry) == STATE_KEYS, entry
            assert isinstance(entry["topic"], str)
            for key in ["partition", "start", "stop", "position", "buffered_messages"]:
                assert isinstance(entry[key], int), (key, entry)
            assert isinstance(entry["buffered_bytes"], int), entry
            assert isinstance(entry["paused"], bool), entry
            assert isinstance(entry["live"], bool), entry
            assert entry["buffered_messages"] >= 0
            assert entry["buffered_bytes"] >= 0
            assert entry["position"] >= entry["start"]
        assert [(e["topic"], e["partition"], e["start"], e["stop"]) for e in state] == previews
        assert [e["live"] for e in state] == [e["start"] == e["stop"] for e in state]
        assert not manager.is_live()
        replay = sum(stop - start for _, _, start, stop in previews)
        # Everything from each start: the replay, then what lies past the stops (a's and b's
        # messages after the cutoff).
        total = replay + 3 + 2
        polled = poll_until_live(manager)
        assert manager.is_live()
        assert all(e["live"] for e in manager.partition_state())
        polled = poll_count(manager, total, polled=polled)
        assert len(polled.records) == total
        time.sleep(0.5)
        assert manager.poll(timeout_ms=200).num_rows == 0
        ends = {tp: len(records) for log in logs.values() for tp, records in log.items()}
        final = manager.partition_state()
        assert [(e["topic"], e["partition"]) for e in final] == [row[:2] for row in previews]
        for entry in final:
            assert entry["live"], entry
            assert entry["position"] == ends[(entry["topic"], entry["partition"])], entry
            assert entry["buffered_messages"] == 0, entry
            assert entry["buffered_bytes"] == 0, entry
