"""The README's examples work verbatim (only the topic name is swapped for a test's own)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.readme_examples import examples
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory

REPO = Path(__file__).resolve().parents[2]
ACTIONS = ["view", "click", "view", "purchase", "view", "click", "view", "view", "click"]


@pytest.fixture
def events(topics: TopicFactory) -> str:
    """A topic shaped like the demo's `events`: JSON events keyed by user over 3 partitions,
    one second apart."""
    messages = [
        Message(
            partition=i % 3,
            key=f"user-{i}".encode(),
            value=json.dumps({"user": f"user-{i}", "action": action, "amount": i}).encode(),
            timestamp_ms=BASE_TIMESTAMP_MS + i * 1000,
        )
        for i, action in enumerate(ACTIONS)
    ]
    return topics.create("events", partitions=3, messages=messages)


def with_topic(code: str, topic: str) -> str:
    assert "'events'" in code, "the README examples read the topic 'events'"
    return code.replace("'events'", f"'{topic}'")


# The README's SQL, fed to the DuckDB CLI from the repository root.
@pytest.mark.cli
def test_readme_sql_in_cli(duckdb_cli: str, events: str) -> None:
    [sql] = examples("sql")
    result = subprocess.run(
        [duckdb_cli, "-unsigned", "-bail", "-csv"],
        input=with_topic(sql, events),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["partition", "offset", "timestamp", "key", "value"]
    assert rows[1] == [
        "0",
        "0",
        "2024-01-01 00:00:00+00",
        "user-0",
        '{"user": "user-0", "action": "view", "amount": 0}',
    ]
    assert [row[3] for row in rows[1:6]] == [f"user-{i}" for i in range(5)]
    assert rows[6:11] == [
        ["action", "events"],
        ["view", "5"],
        ["click", "3"],
        ["purchase", "1"],
        ["partition", "leader", "low_watermark", "high_watermark", "replicas", "in_sync_replicas"],
    ]
    assert rows[11:] == [[str(p), "1", "0", "3", "[1]", "[1]"] for p in range(3)]


# The README's Python example, run by the venv's Python.
def test_readme_python(events: str) -> None:
    [code] = examples("python")
    result = subprocess.run(
        [sys.executable, "-c", with_topic(code, events)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    assert "2024-01-01 00:00:00+00 user-0 view" in lines
    assert result.stdout.rstrip().endswith("9 events")
