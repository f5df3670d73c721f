"""kafkars.ray.read_kafka on a real local Ray cluster (two worker CPUs) and the real broker:
exactly the planned records, each once, whichever worker reads them and however the plan is
split, replayed or retried."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import ray

import kafkars
import kafkars.ray
from kafkars import OffsetRange, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory
from testkit.ray_faults import FAIL_ONCE_ENV
from testkit.scan import read_back

SECOND = 1000
REPO = Path(__file__).resolve().parents[2]
PYTHONPATH = os.environ.get("PYTHONPATH", "")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the module: two CPUs, loopback only, no dashboard."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        # Read tasks fail once where a test asks (testkit.ray_faults); the others are untouched.
        # Ray runs the hook before it gives workers the driver's sys.path, so the repository
        # (where testkit is) comes through PYTHONPATH.
        runtime_env={
            "worker_process_setup_hook": "testkit.ray_faults.install",
            "env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), PYTHONPATH]))},
        },
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def config(brokers: str) -> dict[str, str]:
    return {"bootstrap.servers": brokers}


def rows(dataset: ray.data.Dataset) -> list[tuple]:
    """The dataset's ``(partition, offset, key, value)`` rows, sorted."""
    table = pa.concat_tables(ray.get(dataset.to_arrow_refs()))
    return sorted(
        zip(
            *(table.column(name).to_pylist() for name in ("partition", "offset", "key", "value")),
            strict=True,
        )
    )


def skewed_messages(counts: list[int], prefix: str = "") -> list[Message]:
    return [
        Message(partition, f"{prefix}k{partition}-{i}".encode(),
                f"{prefix}v{partition}-{i}".encode(), BASE_TIMESTAMP_MS + i * SECOND)
        for partition, count in enumerate(counts)
        for i in range(count)
    ]  # fmt: skip


def expected(messages: list[Message]) -> list[tuple]:
    offsets: dict[int, int] = {}
    out = []
    for m in messages:
        offset = offsets.get(m.partition, 0)
        offsets[m.partition] = offset + 1
        out.append((m.partition, offset, m.key, m.value))
    return sorted(out)


# A skewed four-partition topic: every produced (partition, offset) exactly once, with its key
# and value; count() reads (it does not trust the planned offsets).
def test_read_kafka_exact_rows(topics: TopicFactory, brokers: str) -> None:
    messages = skewed_messages([600, 60, 7, 0])
    topic = topics.create("skewed", partitions=4, messages=messages)
    source = [SourceTopic.from_earliest(topic)]
    # A fresh dataset's count() reads (Ray would otherwise answer from task metadata).
    assert kafkars.ray.read_kafka(config(brokers), source).count() == 667
    dataset = kafkars.ray.read_kafka(config(brokers), source)
    assert sorted(dataset.input_files()) == [
        f"kafka://{topic}/{p}/0-{n}" for p, n in [(0, 600), (1, 60), (2, 7)]
    ]
    got = rows(dataset)
    assert got == expected(messages)
    assert len({(p, o) for p, o, _, _ in got}) == len(messages)
    assert dataset.count() == 667
    assert dataset.schema().names == [
        "topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers",
    ]  # fmt: skip
    # A projection, and select_columns pushed down into the reader.
    narrow = kafkars.ray.read_kafka(
        config(brokers), [SourceTopic.from_earliest(topic)], columns=["offset", "partition"]
    )
    table = pa.concat_tables(ray.get(narrow.to_arrow_refs()))
    assert table.schema.names == ["offset", "partition"]
    pairs = zip(table["partition"].to_pylist(), table["offset"].to_pylist(), strict=True)
    assert sorted(pairs) == [(p, o) for p, o, _, _ in got]
    selected = dataset.select_columns(["value"])
    assert sorted(selected.to_pandas()["value"]) == sorted(m.value for m in messages)


# A split plan (many tasks) reads the same rows as the unsplit one, and more than one worker
# process takes part.
def test_read_kafka_split_and_workers(topics: TopicFactory, brokers: str) -> None:
    messages = skewed_messages([500, 120, 30, 5])
    topic = topics.create("split", partitions=4, messages=messages)
    source = [SourceTopic.from_earliest(topic)]
    whole = rows(kafkars.ray.read_kafka(config(brokers), source))
    split = kafkars.ray.read_kafka(config(brokers), source, split_size=25, batch_size=10)

    def with_pid(batch: pa.Table) -> pa.Table:
        time.sleep(0.05)  # keep each task busy long enough for the other worker to start
        return batch.append_column("pid", pa.array([os.getpid()] * batch.num_rows, pa.int64()))

    table = pa.concat_tables(
        ray.get(split.map_batches(with_pid, batch_format="pyarrow").to_arrow_refs())
    )
    assert whole == expected(messages)
    assert (
        sorted(zip(*(table[c].to_pylist() for c in ("partition", "offset", "key", "value")),
                   strict=True))
        == whole
    )  # fmt: skip
    assert len(set(table["pid"].to_pylist())) > 1


# A saved plan (JSON) replays the same rows after more messages arrived; a new plan sees them.
def test_read_kafka_saved_plan(topics: TopicFactory, brokers: str) -> None:
    first = skewed_messages([40, 20, 5, 1])
    topic = topics.create("replay", partitions=4, messages=first)
    saved = OffsetRange.list_to_json(
        kafkars.plan(config(brokers), [SourceTopic.from_earliest(topic)], split_size=15)
    )
    before = rows(kafkars.ray.read_kafka(config(brokers), ranges=OffsetRange.list_from_json(saved)))
    assert before == expected(first)
    more = skewed_messages([10, 10, 10, 10], prefix="more-")
    topics.produce(topic, more)
    replayed = rows(
        kafkars.ray.read_kafka(config(brokers), ranges=OffsetRange.list_from_json(saved))
    )
    assert replayed == before
    now = rows(kafkars.ray.read_kafka(config(brokers), [SourceTopic.from_earliest(topic)]))
    assert len(now) == 66 + 40
    with pytest.raises(ValueError, match=r"^give exactly one of topics"):
        kafkars.ray.read_kafka(config(brokers))


# A transactional topic (aborted transactions included) and a compacted one end cleanly, with
# exactly the committed or remaining records, also split into pieces.
def test_read_kafka_transactions_and_compaction(topics: TopicFactory, brokers: str) -> None:
    def batch(name: str, partitions: list[int], count: int) -> list[Message]:
        return [
            Message(partitions[i % len(partitions)], f"{name}-{i}".encode(), f"{name} {i}".encode(),
                    BASE_TIMESTAMP_MS + i * SECOND)
            for i in range(count)
        ]  # fmt: skip

    txn = topics.create("txn", partitions=2)
    topics.produce_transactions(
        txn,
        [
            (batch("a", [0, 1], 10), True),
            (batch("b", [0, 1], 10), False),
            (batch("c", [0], 5), True),
            (batch("d", [1], 5), False),
        ],
    )
    log = read_back(brokers, txn)
    committed = sorted((r.partition, r.offset, r.key, r.value) for rs in log.values() for r in rs)
    assert len(committed) == 15
    started = time.monotonic()
    for split_size in (None, 4):
        dataset = kafkars.ray.read_kafka(
            config(brokers), [SourceTopic.from_earliest(txn)], split_size=split_size
        )
        assert rows(dataset) == committed
        assert dataset.count() == 15
    assert time.monotonic() - started < 60

    compaction = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "86400000",
    }
    compacted = topics.create("compacted", config=compaction)
    for round_ in range(3):
        topics.produce(
            compacted,
            [Message(0, f"key{i}".encode(), f"round {round_} value {i}".encode(),
                     BASE_TIMESTAMP_MS + (60 * round_ + i) * SECOND) for i in range(4)],
        )  # fmt: skip
    topics.produce(compacted, [Message(0, b"last", b"end", BASE_TIMESTAMP_MS + 3600 * SECOND)])
    deadline = time.monotonic() + 60
    while [r.offset for r in read_back(brokers, compacted)[(compacted, 0)]] != [8, 9, 10, 11, 12]:
        assert time.monotonic() < deadline, "the topic was not compacted in 60 s"
        time.sleep(0.5)
    left = read_back(brokers, compacted)[(compacted, 0)]
    remaining = sorted((r.partition, r.offset, r.key, r.value) for r in left)
    for split_size in (None, 3):
        dataset = kafkars.ray.read_kafka(
            config(brokers), [SourceTopic.from_earliest(compacted)], split_size=split_size
        )
        assert rows(dataset) == remaining


# Every task's first attempt fails; Ray retries it and the output is still exact.
def test_read_kafka_retries_a_failed_task(
    topics: TopicFactory, brokers: str, tmp_path: Path
) -> None:
    messages = skewed_messages([50, 30, 10, 3])
    topic = topics.create("retry", partitions=4, messages=messages)
    dataset = kafkars.ray.read_kafka(
        config(brokers),
        [SourceTopic.from_earliest(topic)],
        split_size=20,
        ray_remote_args={"runtime_env": {"env_vars": {FAIL_ONCE_ENV: str(tmp_path)}}},
    )
    assert rows(dataset) == expected(messages)
    # One marker per non-empty range: each failed once, then succeeded.
    assert len(list(tmp_path.iterdir())) == 3 + 2 + 1 + 1
    # Without retries, the failure surfaces.
    (tmp_path / "again").mkdir()
    failing = kafkars.ray.read_kafka(
        config(brokers),
        [SourceTopic.from_earliest(topic)],
        max_retries=0,
        ray_remote_args={"runtime_env": {"env_vars": {FAIL_ONCE_ENV: str(tmp_path / "again")}}},
    )
    with pytest.raises(Exception, match="injected failure of the first attempt"):
        failing.materialize()


# Without Ray, importing kafkars.ray says how to install it.
def test_import_without_ray() -> None:
    code = "import sys; sys.modules['ray'] = None; import kafkars.ray"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ImportError: kafkars.ray needs Ray Data" in result.stderr
    assert "pip install 'kafkars[ray]'" in result.stderr
