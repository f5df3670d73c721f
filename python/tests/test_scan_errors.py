"""kafka_scan and kafka_offsets refuse bad arguments with errors that say what and which, in
time, and leave the connection usable."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb
import pytest

from testkit.kafka import TopicFactory, round_robin
from testkit.scan import fetch


@dataclass(frozen=True)
class Case:
    """Arguments after the topics (``{topic}``, ``{other}``, ``{missing}``, ``{brokers}`` are
    filled in), and substrings the error must contain."""

    topics: str
    arguments: str
    expected: tuple[str, ...]
    scan_only: bool = False


NAMED_PARAMETERS = {
    "brokers": False,
    "policy": False,
    "start": False,
    "lookback": False,
    "cutoff": False,
    "partitions": False,
    "topic_pattern": False,
    "start_offsets": False,
    "stop_offsets": False,
    "ranges": False,
    "on_missing": False,
    "split_size": False,
    "max_buffer_bytes": True,  # kafka_scan only
    "ordered": True,
    "timeout": False,
    "config": False,
}

CASES = {
    "unknown-policy": Case(
        "{topic}",
        "policy := 'newest'",
        ("invalid policy", "'earliest', 'latest', 'timestamp', 'relative'"),
    ),
    "timestamp-without-start": Case("{topic}", "policy := 'timestamp'", ("invalid start",)),
    "relative-without-lookback": Case("{topic}", "policy := 'relative'", ("invalid lookback",)),
    "negative-lookback": Case(
        "{topic}",
        "lookback := INTERVAL '-1 hour'",
        ("invalid lookback: expected a non-negative interval",),
    ),
    "missing-partition": Case(
        "{topic}", "partitions := [0, 12345]", ("invalid partitions", "12345", "{topic}")
    ),
    # {other} has one partition: partition 1 exists in {topic} only.
    "partition-missing-in-second-topic": Case(
        "{topic},{other}", "partitions := [1]", ("invalid partitions", "{other}")
    ),
    "unknown-topic": Case("{missing}", "", ("topic '{missing}' does not exist",)),
    "unknown-topic-in-list": Case("{topic},{missing}", "", ("topic '{missing}' does not exist",)),
    "cutoff-before-start": Case(
        "{topic}",
        "start := TIMESTAMPTZ '2024-01-02 00:00:00+00', "
        "cutoff := TIMESTAMPTZ '2024-01-01 00:00:00+00'",
        ("invalid cutoff",),
    ),
    # NULL stands for "no list" (for topic_pattern or ranges), so alone it is a missing list.
    "null-topics": Case(
        "NULL",
        "",
        (
            "invalid topics: expected a topic list; with topic_pattern := '<regex>' or ranges := "
            "<plan>, give NULL",
        ),
    ),
    **{
        f"null-{name}": Case(
            "{topic}",
            f"{name} := NULL",
            (f"invalid {name}: expected a value, found NULL",),
            scan_only=scan_only,
        )
        for name, scan_only in NAMED_PARAMETERS.items()
    },
}

PARAMETERS = [
    pytest.param(function, case, id=f"{function}-{name}")
    for function in ["kafka_scan", "kafka_offsets"]
    for name, case in CASES.items()
    if function == "kafka_scan" or not case.scan_only
]


# Each bad argument fails with an error naming the parameter (or topic, or partition) and what
# was expected; nothing is created; afterwards the connection still answers.
@pytest.mark.parametrize(("function", "case"), PARAMETERS)
def test_bad_arguments(
    con: duckdb.DuckDBPyConnection,
    topics: TopicFactory,
    brokers: str,
    function: str,
    case: Case,
) -> None:
    uses_other = "{other}" in case.topics
    names = {
        "topic": topics.create("main", partitions=2, messages=round_robin(4, 2)),
        "other": topics.create("other", partitions=1, messages=round_robin(2, 1))
        if uses_other
        else "",
        "missing": topics.unique_name("missing"),
        "brokers": brokers,
    }
    listed = "NULL" if case.topics == "NULL" else "'" + case.topics.format(**names) + "'"
    arguments = case.arguments.format(**names)
    if "brokers :=" not in arguments:
        arguments = f"brokers := '{brokers}'" + (f", {arguments}" if arguments else "")
    sql = f"SELECT * FROM {function}({listed}, {arguments})"
    with pytest.raises(duckdb.Error) as raised:
        fetch(con, sql)
    message = str(raised.value)
    for expected in case.expected:
        assert expected.format(**names) in message, sql
    assert names["missing"] not in topics.admin.list_topics(timeout=10).topics
    assert con.sql("SELECT 42").fetchall() == [(42,)]


# Unreachable brokers: an error naming them within the timeout, and the connection survives.
@pytest.mark.parametrize("function", ["kafka_scan", "kafka_offsets"])
def test_unreachable_brokers_fail_within_timeout(
    con: duckdb.DuckDBPyConnection, function: str
) -> None:
    started = time.monotonic()
    with pytest.raises(duckdb.Error) as raised:
        fetch(
            con,
            f"SELECT * FROM {function}('t', brokers := '127.0.0.1:1', "
            "timeout := INTERVAL 3 SECONDS)",
            limit_s=20,
        )
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert "could not reach Kafka brokers 127.0.0.1:1" in str(raised.value)
    assert con.sql("SELECT 42").fetchall() == [(42,)]
