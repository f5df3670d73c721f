"""kafka_scan and kafka_offsets read without side effects: no consumer group, no commit."""

from __future__ import annotations

import duckdb

from testkit.kafka import TopicFactory, round_robin
from testkit.scan import fetch, tstz


# Scans and previews, with and without a group.id in config, create no consumer group and
# commit no offset: the Admin API shows nothing new afterwards.
def test_scans_create_no_group_and_commit_nothing(
    con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic = topics.create("quiet", partitions=3, messages=round_robin(30, 3))
    group = topics.unique_name("group")
    before = topics.consumer_groups()
    with_group = f"config := MAP {{'group.id': '{group}'}}"
    for function in ["kafka_scan", "kafka_offsets"]:
        for arguments in [
            "",
            f", {with_group}",
            f", policy := 'latest', {with_group}",
            f", start := {tstz(1_704_067_210_000)}, {with_group}",
            f", lookback := INTERVAL 100000 DAYS, partitions := [1], {with_group}",
        ]:
            fetch(con, f"SELECT * FROM {function}('{topic}', brokers := '{brokers}'{arguments})")
    assert fetch(
        con, f"SELECT count(*) FROM kafka_scan('{topic}', brokers := '{brokers}', {with_group})"
    ) == [(30,)]
    after = topics.consumer_groups()
    assert group not in after
    assert after <= before
    assert topics.committed_offsets(group, topic, 3) == [-1001, -1001, -1001]
