"""The README's examples work verbatim (only the topic name is swapped for a test's own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.readme_examples import examples
from testkit.kafka import TopicFactory, round_robin

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def events(topics: TopicFactory) -> str:
    """A topic shaped like the demo's `events`: 3 partitions, 9 messages."""
    return topics.create("events", partitions=3, messages=round_robin(9, 3))


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
    assert result.stdout.splitlines() == [
        "topic,partitions,replication_factor",
        f"{events},3,1",
        "partition,leader,low_watermark,high_watermark,replicas,in_sync_replicas",
        "0,1,0,3,[1],[1]",
        "1,1,0,3,[1],[1]",
        "2,1,0,3,[1],[1]",
    ]


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
    assert f"about 9 messages in '{events}'" in result.stdout
