"""kafka_topics and kafka_partitions through kafkars.connect(), against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import duckdb
import pytest

from testkit.kafka import Message, TopicFactory, round_robin


# Exact partitions, leaders and watermarks of a topic with known content.
def test_partitions_exact_rows(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("orders", partitions=4, messages=round_robin(10, 4))
    rows = con.execute(
        "SELECT partition, leader, low_watermark, high_watermark, replicas, in_sync_replicas "
        "FROM kafka_partitions(?, brokers := ?)",
        [topic, brokers],
    ).fetchall()
    assert rows == [
        (0, 1, 0, 3, [1], [1]),
        (1, 1, 0, 3, [1], [1]),
        (2, 1, 0, 2, [1], [1]),
        (3, 1, 0, 2, [1], [1]),
    ]


# The high watermark counts every offset, also those of transaction markers.
def test_partitions_high_watermark_includes_transaction_markers(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    from confluent_kafka import Producer

    topic = topics.create("txn", partitions=1)
    producer = Producer({"bootstrap.servers": brokers, "transactional.id": topic})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"v{i}".encode(), partition=0)
    producer.commit_transaction(30)
    # The coordinator writes the commit marker into the partition shortly after the commit
    # returns; wait for it rather than race it.
    deadline = time.monotonic() + 15
    while True:
        rows = con.execute(
            "SELECT low_watermark, high_watermark FROM kafka_partitions(?, brokers := ?)",
            [topic, brokers],
        ).fetchall()
        if rows != [(0, 3)] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # Three records and one commit marker.
    assert rows == [(0, 4)]


# A topic whose earliest records were deleted shows the new log start.
def test_partitions_low_watermark_after_delete_records(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("trimmed", partitions=1, messages=round_robin(5, 1))
    topics.delete_records(topic, 0, 2)
    rows = con.execute(
        "SELECT low_watermark, high_watermark FROM kafka_partitions(?, brokers := ?)",
        [topic, brokers],
    ).fetchall()
    assert rows == [(2, 5)]


# kafka_topics lists the test's topics with partition counts; internal topics are flagged.
def test_topics_lists_created_topics(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    first = topics.create("a", partitions=2)
    second = topics.create("b", partitions=5, messages=[Message(4, None, b"x", 1)])
    rows = con.execute(
        "SELECT topic, partitions, replication_factor, internal "
        "FROM kafka_topics(brokers := ?) WHERE topic IN (?, ?)",
        [brokers, first, second],
    ).fetchall()
    assert rows == sorted([(first, 2, 1, False), (second, 5, 1, False)])


# A topic that does not exist: the error names it and the brokers; nothing is created.
def test_unknown_topic_named_and_not_created(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    name = topics.unique_name("nope")
    with pytest.raises(duckdb.InvalidInputException) as raised:
        con.execute("SELECT * FROM kafka_partitions(?, brokers := ?)", [name, brokers])
    assert str(raised.value) == (
        f"Invalid Input Error: kafka_partitions: topic '{name}' does not exist "
        f"on Kafka brokers {brokers}"
    )
    assert name not in topics.admin.list_topics(timeout=10).topics


# Unreachable brokers: an error naming them within the timeout, and the connection survives.
@pytest.mark.parametrize("function", ["kafka_partitions('t', ", "kafka_topics("])
def test_unreachable_brokers_fail_within_timeout(
    con: duckdb.DuckDBPyConnection, function: str
) -> None:
    started = time.monotonic()
    with pytest.raises(duckdb.InvalidInputException) as raised:
        con.sql(
            f"SELECT * FROM {function}brokers := '127.0.0.1:1', timeout := INTERVAL 3 SECONDS)"
        ).fetchall()
    elapsed = time.monotonic() - started
    assert 2.5 <= elapsed < 5, elapsed
    assert "could not reach Kafka brokers 127.0.0.1:1 within 3s" in str(raised.value)
    assert con.sql("SELECT 42").fetchall() == [(42,)]


# The brokers default comes from KAFKA_BOOTSTRAP_SERVERS when nothing else names them.
def test_brokers_from_environment(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("env", partitions=2)
    script = (
        "import kafkars\n"
        f"print(kafkars.connect().sql(\"SELECT count(*) FROM kafka_partitions('{topic}')\")"
        ".fetchall())\n"
    )
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": brokers}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[(2,)]"


# Credentials in config never show up in errors, even when librdkafka rejects the config.
def test_errors_never_show_credentials(con: duckdb.DuckDBPyConnection) -> None:
    secret = "s3cr3t-hunter2"
    queries = [
        # librdkafka rejects the combination (SASL without a mechanism it knows).
        "SELECT * FROM kafka_topics(brokers := '127.0.0.1:1', timeout := INTERVAL 2 SECONDS, "
        f"config := MAP {{'sasl.mechanism': 'NOPE', 'sasl.password': '{secret}'}})",
        # Unreachable brokers with credentials set.
        "SELECT * FROM kafka_topics(brokers := '127.0.0.1:1', timeout := INTERVAL 2 SECONDS, "
        f"config := MAP {{'sasl.username': 'u', 'sasl.password': '{secret}'}})",
    ]
    for query in queries:
        with pytest.raises(duckdb.Error) as raised:
            con.sql(query).fetchall()
        assert secret not in str(raised.value)
