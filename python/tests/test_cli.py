"""The extension in the DuckDB command-line shell (1.5.6), as a user runs it."""

from __future__ import annotations

import subprocess
import time

import pytest

import kafkars
from testkit.kafka import TopicFactory, round_robin

pytestmark = pytest.mark.cli


def run_cli(cli: str, sql: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Feed ``sql`` to the shell's standard input, as a script; it goes on after errors."""
    return subprocess.run(
        [cli, "-unsigned", "-csv"], input=sql, capture_output=True, text=True, timeout=timeout
    )


# The issue's own command: LOAD the file, then kafka_partitions on the real broker.
def test_cli_kafka_partitions(duckdb_cli: str, topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("cli", partitions=2, messages=round_robin(5, 2))
    result = run_cli(
        duckdb_cli,
        f"LOAD '{kafkars.extension_path()}'; "
        f"SELECT * FROM kafka_partitions('{topic}', brokers := '{brokers}')",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "partition,leader,low_watermark,high_watermark,replicas,in_sync_replicas",
        "0,1,0,3,[1],[1]",
        "1,1,0,2,[1],[1]",
    ]


# In the CLI too, unreachable brokers fail in time and the shell goes on to the next query.
def test_cli_unreachable_brokers(duckdb_cli: str) -> None:
    started = time.monotonic()
    result = run_cli(
        duckdb_cli,
        # One statement a line: the shell abandons the rest of a line after an error.
        f"LOAD '{kafkars.extension_path()}';\n"
        "SELECT * FROM kafka_topics(brokers := '127.0.0.1:1', timeout := INTERVAL 3 SECONDS);\n"
        "SELECT 'still here' AS status;\n",
    )
    assert time.monotonic() - started < 8
    assert "could not reach Kafka brokers 127.0.0.1:1 within 3s" in result.stderr
    assert result.stdout.splitlines() == ["status", "still here"]
