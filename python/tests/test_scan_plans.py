"""Plans you can keep: explicit offsets, ``ranges`` replays, incremental loads, ``on_missing``
and topic patterns, end to end against the broker, through SQL and ``ConsumerManager``."""

from __future__ import annotations

import threading
import time
import uuid

import duckdb
import pytest

from kafkars import ConsumerManager, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, round_robin

SCAN_COLUMNS = 'topic, "partition", "offset", decode(value) AS value'


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_plan_replays_the_same_rows_after_more_messages(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("replay", partitions=3, messages=round_robin(3_000, 3))
    con.execute(
        "SET VARIABLE plan = (SELECT list(o) "
        f"FROM kafka_offsets('{topic}', brokers := '{brokers}') o)"
    )
    first = rows(con, f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}')")
    assert len(first) == 3_000

    topics.produce(topic, round_robin(10_000, 3, start_ms=BASE_TIMESTAMP_MS - 5_000_000))
    replayed = rows(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', "
        "ranges := getvariable('plan'))",
    )
    # Every row, in the same order, however much was produced since (some of it older).
    assert replayed == first
    unordered = rows(
        con,
        f"SELECT {SCAN_COLUMNS} FROM kafka_scan('{topic}', brokers := '{brokers}', "
        "ranges := getvariable('plan'), ordered := false, split_size := 400)",
    )
    assert sorted(unordered) == sorted(first)
    assert rows(con, f"SELECT count(*) FROM kafka_scan('{topic}', brokers := '{brokers}')") == [
        (13_000,)
    ]


# The README's incremental load, verbatim in shape: the stop offsets of the last load start
# the next one.
LOAD = """
SET VARIABLE starts = (SELECT coalesce(map(list("partition"), list(stop_offset)), MAP {{}})
                       FROM last_load);
SET VARIABLE plan = (SELECT list(o)
                     FROM kafka_offsets('{topic}', brokers := '{brokers}',
                                        start_offsets := getvariable('starts')) o);
INSERT INTO loaded
SELECT "partition", "offset", decode(value)
FROM kafka_scan('{topic}', brokers := '{brokers}', ranges := getvariable('plan'));
DELETE FROM last_load;
INSERT INTO last_load
SELECT p.partition, p.stop_offset FROM (SELECT unnest(getvariable('plan')) AS p);
"""


def test_incremental_loads_land_each_message_exactly_once(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("incremental", partitions=3, messages=round_robin(500, 3))
    con.execute('CREATE TABLE last_load ("partition" INTEGER, stop_offset BIGINT)')
    con.execute('CREATE TABLE loaded ("partition" INTEGER, "offset" BIGINT, value VARCHAR)')

    produced = 500
    stop = threading.Event()
    failures: list[BaseException] = []

    def produce() -> None:
        nonlocal produced
        try:
            while not stop.is_set():
                batch = [
                    Message(i % 3, f"k{i}".encode(), f"v{i}".encode(), BASE_TIMESTAMP_MS + i)
                    for i in range(produced, produced + 200)
                ]
                topics.produce(topic, batch)
                produced += len(batch)
                time.sleep(0.05)
        except BaseException as error:  # reported by the test below
            failures.append(error)

    producer = threading.Thread(target=produce, name="incremental-producer")
    producer.start()
    try:
        loads = []
        for _ in range(5):
            con.execute(LOAD.format(topic=topic, brokers=brokers))
            loads.append(rows(con, "SELECT count(*) FROM loaded")[0][0])
            time.sleep(0.2)
    finally:
        stop.set()
        producer.join()
    assert not failures
    # The loads grew while the producer wrote...
    assert loads == sorted(loads)
    assert loads[-1] > loads[0] > 0
    # ...and one more load after it stopped takes the rest: every message exactly once.
    con.execute(LOAD.format(topic=topic, brokers=brokers))
    loaded = rows(con, 'SELECT value FROM loaded ORDER BY "partition", "offset"')
    assert len(loaded) == produced
    assert sorted(value for (value,) in loaded) == sorted(f"v{i}" for i in range(produced))
    assert rows(
        con, 'SELECT count(*) FROM (SELECT DISTINCT "partition", "offset" FROM loaded)'
    ) == [(produced,)]


def test_start_below_the_log_start_fails_or_skips(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("retention", partitions=1, messages=round_robin(10, 1))
    # What retention does, made to happen now: the log starts at offset 6.
    topics.delete_records(topic, 0, 6)

    with pytest.raises(duckdb.InvalidInputException) as raised:
        con.execute(
            f"SELECT * FROM kafka_scan('{topic}', brokers := '{brokers}', "
            "start_offsets := MAP {0: 2})"
        )
    assert str(raised.value) == (
        f"Invalid Input Error: kafka_scan: invalid start_offsets: the start offset 2 of topic "
        f"'{topic}' partition 0 is below the log start 6: retention deleted offsets 2..5; use "
        "on_missing := 'skip' to start at the log start"
    )
    assert rows(
        con,
        f"SELECT start_offset, stop_offset, note FROM kafka_offsets('{topic}', "
        f"brokers := '{brokers}', start_offsets := MAP {{0: 2}}, on_missing := 'skip')",
    ) == [(6, 10, "offsets 2..5 were deleted by retention; starting at the log start 6")]
    assert rows(
        con,
        f"SELECT \"offset\" FROM kafka_scan('{topic}', brokers := '{brokers}', "
        "start_offsets := MAP {0: 2}, on_missing := 'skip')",
    ) == [(6,), (7,), (8,), (9,)]

    # A kept plan whose start was deleted since: the same choice.
    plan = f"[{{'topic': '{topic}', 'partition': 0, 'start_offset': 3, 'stop_offset': 8}}]"
    with pytest.raises(duckdb.InvalidInputException, match="invalid ranges: the start offset 3"):
        con.execute(
            f"SELECT * FROM kafka_scan('{topic}', brokers := '{brokers}', ranges := {plan})"
        )
    assert rows(
        con,
        f"SELECT \"offset\" FROM kafka_scan('{topic}', brokers := '{brokers}', ranges := {plan}, "
        "on_missing := 'skip')",
    ) == [(6,), (7,)]
    gone = f"[{{'topic': '{topic}', 'partition': 0, 'start_offset': 0, 'stop_offset': 4}}]"
    assert rows(
        con,
        f"SELECT start_offset, stop_offset, note FROM kafka_offsets(NULL, "
        f"brokers := '{brokers}', ranges := {gone}, on_missing := 'skip')",
    ) == [(4, 4, "offsets 0..5 were deleted by retention; starting at the log start 6")]
    assert rows(
        con,
        f"SELECT count(*) FROM kafka_scan(NULL, brokers := '{brokers}', ranges := {gone}, "
        "on_missing := 'skip')",
    ) == [(0,)]


def replay(manager: ConsumerManager) -> list[tuple[str, int, int, bytes]]:
    """Everything a manager returns before it is live."""
    out: list[tuple[str, int, int, bytes]] = []
    deadline = time.monotonic() + 60
    while not manager.is_live():
        assert time.monotonic() < deadline, "the replay did not finish"
        batch = manager.poll(timeout_ms=500)
        out.extend(
            zip(
                batch.column("topic").to_pylist(),
                batch.column("partition").to_pylist(),
                batch.column("offset").to_pylist(),
                batch.column("value").to_pylist(),
                strict=True,
            )
        )
    return out


def test_manager_starts_from_offsets(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("from-offsets", partitions=3, messages=round_robin(30, 3))
    with ConsumerManager(
        {"bootstrap.servers": brokers}, [SourceTopic.from_offsets(topic, {0: 8, 2: -1})]
    ) as manager:
        got = replay(manager)
        state = {s["partition"]: (s["start"], s["stop"]) for s in manager.partition_state()}
    # Partition 0 from offset 8, partition 1 (not named) from the earliest, 2 from the end.
    assert state == {0: (8, 10), 1: (0, 10), 2: (10, 10)}
    assert [(p, o) for _, p, o, _ in got] == [(1, o) for o in range(8)] + [
        (0, 8),
        (1, 8),
        (0, 9),
        (1, 9),
    ]
    assert got[-1][3] == b"v28"


def test_manager_reads_topics_by_pattern(topics: TopicFactory, brokers: str) -> None:
    # The factory's names are <prefix>-<hint>-<random>: a random hint is what they share.
    token = f"pattern{uuid.uuid4().hex[:10]}"
    names = [topics.create(f"{token}-{i}", messages=round_robin(2, 1)) for i in range(2)]
    topics.create("unrelated", messages=round_robin(2, 1))
    with ConsumerManager(
        {"bootstrap.servers": brokers}, [SourceTopic.from_pattern(f"-{token}-[0-9]-")]
    ) as manager:
        got = replay(manager)
        assert sorted({s["topic"] for s in manager.partition_state()}) == sorted(names)
    assert sorted((t, o) for t, _, o, _ in got) == sorted((t, o) for t in names for o in range(2))


def test_source_topic_bad_inputs(brokers: str) -> None:
    with pytest.raises(TypeError, match="offsets must be a mapping of partition to offset"):
        SourceTopic.from_offsets("t", [(0, 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="offsets: a offset must be an int, found str '1'"):
        SourceTopic.from_offsets("t", {0: "1"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"invalid offsets: partition numbers go from 0"):
        SourceTopic.from_offsets("t", {-1: 0})
    with pytest.raises(ValueError, match=r"found -3 for partition 0 of topic 't'"):
        SourceTopic.from_offsets("t", {0: -3})
    with pytest.raises(ValueError, match="invalid pattern: expected a regular expression"):
        SourceTopic.from_pattern(" ")
    with pytest.raises(ValueError, match="invalid topic_pattern: 'a-\\(' is not a valid regular"):
        ConsumerManager({"bootstrap.servers": brokers}, [SourceTopic.from_pattern("a-(")])
    with pytest.raises(ValueError, match="invalid topic_pattern: no topic of the cluster at"):
        ConsumerManager(
            {"bootstrap.servers": brokers}, [SourceTopic.from_pattern("^no-such-topic-anywhere$")]
        )


def test_manager_start_offset_past_the_end(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("past-end", partitions=1, messages=round_robin(3, 1))
    with pytest.raises(ValueError, match="invalid start_offsets") as raised:
        ConsumerManager({"bootstrap.servers": brokers}, [SourceTopic.from_offsets(topic, {0: 7})])
    assert str(raised.value) == (
        f"invalid start_offsets: the start offset 7 of topic '{topic}' partition 0 is past the "
        "end of the log (3)"
    )
    with pytest.raises(ValueError, match=f"partition 4 does not exist in topic '{topic}'"):
        ConsumerManager({"bootstrap.servers": brokers}, [SourceTopic.from_offsets(topic, {4: 0})])
