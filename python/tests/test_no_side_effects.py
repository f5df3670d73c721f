"""kafkars reads without side effects: no consumer group, no committed offset, no topic."""

from __future__ import annotations

import duckdb

from testkit.kafka import TopicFactory, round_robin


# Metadata queries, even with a group.id in config, create no consumer group.
def test_metadata_creates_no_consumer_group(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("quiet", partitions=3, messages=round_robin(6, 3))
    group = topics.unique_name("group")
    before = topics.consumer_groups()
    con.execute(
        "SELECT * FROM kafka_partitions(?, brokers := ?, config := MAP {'group.id': ?})",
        [topic, brokers, group],
    ).fetchall()
    con.execute("SELECT * FROM kafka_topics(brokers := ?)", [brokers]).fetchall()
    after = topics.consumer_groups()
    assert group not in after
    assert after <= before
