"""kafkars reads without side effects: no consumer group, no committed offset, no topic."""

from __future__ import annotations

import duckdb

from testkit.kafka import TopicFactory, round_robin


def consumer_groups(topics: TopicFactory) -> set[str]:
    result = topics.admin.list_consumer_groups(request_timeout=10).result()
    return {group.group_id for group in result.valid}


# Metadata queries, even with a group.id in config, create no consumer group.
def test_metadata_creates_no_consumer_group(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("quiet", partitions=3, messages=round_robin(6, 3))
    group = topics.unique_name("group")
    before = consumer_groups(topics)
    con.execute(
        "SELECT * FROM kafka_partitions(?, brokers := ?, config := MAP {'group.id': ?})",
        [topic, brokers, group],
    ).fetchall()
    con.execute("SELECT * FROM kafka_topics(brokers := ?)", [brokers]).fetchall()
    after = consumer_groups(topics)
    assert group not in after
    assert after <= before
