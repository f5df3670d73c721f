"""The README's examples work verbatim (only the topic name is swapped for a test's own)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.readme_examples import examples
from testkit.cli import cli_rows
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


def with_topic(code: str, topic: str, name: str = "events") -> str:
    # As a SQL string ('events') or as the first argument of a SourceTopic ("events").
    code = code.replace(f"'{name}'", f"'{topic}'").replace(f'("{name}"', f'("{topic}"')
    assert topic in code, f"the README example reads no topic {name!r}"
    return code


@pytest.fixture(scope="module")
def extension_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB extension directory of the tests' own: the README's INSTALL puts kafkars from
    dist/repository there, never into the user's ~/.duckdb."""
    return tmp_path_factory.mktemp("duckdb_extensions")


# The install block: INSTALL from the repository `make dist` writes, LOAD by name.
@pytest.mark.cli
def test_readme_install_in_cli(duckdb_cli: str, extension_directory: Path) -> None:
    import kafkars

    sql = examples("sql")[0]
    assert "INSTALL kafkars FROM 'dist/repository'" in sql
    rows = cli_rows(duckdb_cli, sql, extension_directory=extension_directory, cwd=REPO)
    assert rows == [
        ["kafka_version()"],
        [f"{{'kafkars': {kafkars.__version__}, 'librdkafka': {kafkars.librdkafka_version()}}}"],
    ]


@pytest.fixture(scope="module")
def installed(duckdb_cli: str, extension_directory: Path) -> Path:
    """The extension directory with kafkars installed from dist/repository."""
    install = "INSTALL kafkars FROM 'dist/repository';"
    cli_rows(duckdb_cli, install, extension_directory=extension_directory, cwd=REPO)
    return extension_directory


# The README's SQL, fed to the DuckDB CLI from the repository root.
@pytest.mark.cli
def test_readme_sql_in_cli(duckdb_cli: str, installed: Path, events: str) -> None:
    sql = examples("sql")[1]
    assert sql.startswith("LOAD kafkars;")
    rows = cli_rows(duckdb_cli, with_topic(sql, events), extension_directory=installed, cwd=REPO)
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


# The README's typed-payload query, over Avro orders written by confluent-kafka's
# AvroSerializer through the test registry.
@pytest.mark.cli
def test_readme_avro_sql_in_cli(
    duckdb_cli: str, installed: Path, topics: TopicFactory, registry
) -> None:
    from decimal import Decimal

    from scripts.demo_data import ORDER_SCHEMA

    topic = topics.create("orders", partitions=2)
    spent = {"user-01": Decimal("30.00"), "user-02": Decimal("12.50"), "user-03": Decimal("7.20")}
    orders = []
    for n, (user, total) in enumerate(spent.items()):
        for part in (total / 2, total / 2):
            orders.append(
                {"order_id": n, "user": user, "amount": part, "items": ["pen"], "coupon": None}
            )
    orders.append(
        {"order_id": 9, "user": "user-04", "amount": Decimal("1.00"), "items": [], "coupon": "X"}
    )
    registry.produce_avro(topic, ORDER_SCHEMA, orders[::2], partition=0)
    registry.produce_avro(topic, ORDER_SCHEMA, orders[1::2], partition=1)
    # The SQL blocks run one after the other: the first one loads the extension.
    sql = "LOAD kafkars;\n" + with_topic(examples("sql")[2], topic, name="orders")
    assert registry.url in sql
    rows = cli_rows(duckdb_cli, sql, extension_directory=installed, cwd=REPO)
    assert rows == [
        ["user", "spent", "orders"],
        ["user-01", "30.00", "2"],
        ["user-02", "12.50", "2"],
        ["user-03", "7.20", "2"],
    ]


# The README's plans: a kept plan replayed, an incremental load, a pattern cut into pieces.
@pytest.mark.cli
def test_readme_plans_sql_in_cli(
    duckdb_cli: str, installed: Path, events: str, topics: TopicFactory
) -> None:
    block = examples("sql")[3]
    assert "'^events'" in block
    sql = "LOAD kafkars;\n" + with_topic(block.replace("'^events'", f"'^{events}$'"), events)

    def run() -> list[list[str]]:
        return cli_rows(duckdb_cli, sql, extension_directory=installed, cwd=REPO)

    rows = run()
    # 9 events: replayed, loaded once, and 3 partitions of 3 offsets, in pieces of 200 at most.
    assert rows == [
        ["replayed"],
        ["9"],
        ["loaded"],
        ["9"],
        ["topic", "partition", "start_offset", "stop_offset"],
        *[[events, str(p), "0", "3"] for p in range(3)],
    ]


# The README's Python example, run by the venv's Python.
def test_readme_python(events: str) -> None:
    code = examples("python")[0]
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


# The README's ConsumerManager example (the project's original quick example): it receives
# every event and the last hour of metrics, then reports that it caught up.
def test_readme_consumer_manager(events: str, topics: TopicFactory) -> None:
    now_ms = int(time.time() * 1000)
    metrics = topics.create(
        "metrics",
        partitions=2,
        messages=[
            Message(i % 2, b"host", b"{}", now_ms - minutes * 60_000)
            for i, minutes in enumerate(range(115, 0, -10))
        ],
    )
    code = with_topic(with_topic(examples("python")[1], events), metrics, "metrics")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "Caught up to real-time"
    received = [int(line.split()[1]) for line in lines[:-1]]
    # 9 events, and the 6 metrics of the last hour (55, 45, ..., 5 minutes ago).
    assert sum(received) == 9 + 6


# The README's plan / read_range / kafkars.ray example: one range read locally, then the saved
# plan on a local Ray cluster.
def test_readme_plan_and_ray(events: str) -> None:
    code = with_topic(examples("python")[2], events)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "3 rows of partition 0"
    assert lines[-1] == "9 events"
