"""The benchmark topics: their shapes, and producing them once.

Every dataset is produced with confluent-kafka at full speed, uncompressed
(``compression.type=none``), without keys, with explicit timestamps one millisecond apart from
2024-01-01 in production order, so a ``lookback`` of a minute never reaches them. A topic is
reused while its partitions hold exactly the expected messages (the 100-byte set may hold more:
the latency measurement appends fresh messages to it); otherwise it is deleted and produced again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

#: 2024-01-01T00:00:00Z, the first message's timestamp.
BASE_TIMESTAMP_MS = 1_704_067_200_000


@dataclass(frozen=True)
class Dataset:
    """A topic of ``sum(counts)`` messages of ``size`` bytes; ``counts[p]`` go to partition
    ``p``, interleaved in proportion (the skewed sets put 20 messages into partition 0 for each
    one into the others)."""

    name: str
    size: int
    counts: tuple[int, ...]
    purpose: str
    #: Messages may have been appended after the dataset (the latency measurement does).
    grows: bool = False

    @property
    def messages(self) -> int:
        return sum(self.counts)

    @property
    def partitions(self) -> int:
        return len(self.counts)

    def schedule(self) -> Iterator[int]:
        """Partition of each message in production order: rounds of ``counts[p] / min(counts)``
        messages per partition."""
        unit = min(self.counts)
        shares = [count // unit for count in self.counts]
        for _ in range(unit):
            for partition, share in enumerate(shares):
                for _ in range(share):
                    yield partition


def even(total: int, partitions: int = 8) -> tuple[int, ...]:
    return (total // partitions,) * partitions


def skewed(unit: int, partitions: int = 8, factor: int = 20) -> tuple[int, ...]:
    return (unit * factor,) + (unit,) * (partitions - 1)


def datasets(quick: bool) -> dict[str, Dataset]:
    """The datasets by role: ``100b``, ``1kb``, ``skew``, ``skew-10x``. Quick mode uses a tenth
    of each, under other names."""
    if quick:
        names, scale = ("bench-quick-100b-200k", "bench-quick-1kb-20k", "bench-quick-skew"), 10
    else:
        names, scale = ("bench-100b-2m", "bench-1kb-200k", "bench-skew"), 1
    sets = [
        Dataset(names[0], 100, even(2_000_000 // scale), "throughput, small messages", grows=True),
        Dataset(names[1], 1024, even(200_000 // scale), "throughput, 1 KiB"),
        Dataset(names[2], 1024, skewed(10_000 // scale), "throughput and memory, skewed"),
        Dataset(names[2] + "-10x", 1024, skewed(100_000 // scale), "memory growth, skewed x10"),
    ]
    return dict(zip(("100b", "1kb", "skew", "skew-10x"), sets, strict=True))


class Broker:
    """Admin, watermarks and production against one bootstrap address."""

    def __init__(self, brokers: str) -> None:
        self.brokers = brokers
        self.admin = AdminClient({"bootstrap.servers": brokers})

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]] | None:
        """Low and high watermark per partition, or None when the topic does not exist."""
        metadata = self.admin.list_topics(timeout=30)
        if topic not in metadata.topics:
            return None
        consumer = Consumer({"bootstrap.servers": self.brokers, "group.id": "kafkars-bench-admin"})
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                for p in sorted(metadata.topics[topic].partitions)
            }
        finally:
            consumer.close()

    def message_count(self, topic: str) -> int:
        marks = self.watermarks(topic) or {}
        return sum(high - low for low, high in marks.values())

    def is_complete(self, dataset: Dataset) -> bool:
        marks = self.watermarks(dataset.name)
        if marks is None or len(marks) != dataset.partitions:
            return False
        for partition, count in enumerate(dataset.counts):
            low, high = marks[partition]
            if low != 0 or high < count or (high > count and not dataset.grows):
                return False
        return True

    def ensure(self, dataset: Dataset, log: bool = True) -> float | None:
        """Produce ``dataset`` unless it is already there; the seconds it took, or None."""
        if self.is_complete(dataset):
            return None
        self.delete(dataset.name)
        self.admin.create_topics([NewTopic(dataset.name, dataset.partitions, 1)])[
            dataset.name
        ].result(timeout=60)
        started = time.perf_counter()
        self.produce(dataset)
        seconds = time.perf_counter() - started
        if not self.is_complete(dataset):
            raise RuntimeError(f"{dataset.name} is incomplete after producing it")
        if log:
            print(
                f"produced {dataset.name}: {dataset.messages:,} x {dataset.size} B in "
                f"{seconds:.1f} s",
                flush=True,
            )
        return seconds

    def delete(self, topic: str) -> None:
        """Delete ``topic`` if it exists and wait until the brokers forget it."""
        if self.watermarks(topic) is None:
            return
        self.admin.delete_topics([topic])[topic].result(timeout=60)
        deadline = time.monotonic() + 60
        while topic in self.admin.list_topics(timeout=30).topics:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic} still exists 60 s after deleting it")
            time.sleep(0.2)

    def producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.brokers,
                "compression.type": "none",
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "batch.num.messages": 100_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
            }
        )

    def produce(self, dataset: Dataset) -> None:
        value = os.urandom(dataset.size)
        self._send(
            dataset.name,
            value,
            ((partition, BASE_TIMESTAMP_MS + i) for i, partition in enumerate(dataset.schedule())),
        )

    def append_fresh(self, topic: str, count: int, size: int, partitions: int) -> None:
        """``count`` messages stamped now, spread over the partitions."""
        now_ms = int(time.time() * 1000)
        self._send(topic, os.urandom(size), ((i % partitions, now_ms) for i in range(count)))

    def _send(self, topic: str, value: bytes, messages: Iterator[tuple[int, int]]) -> None:
        producer = self.producer()
        errors: list[str] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                errors.append(str(error))

        for i, (partition, timestamp) in enumerate(messages):
            while True:
                try:
                    producer.produce(
                        topic,
                        value,
                        partition=partition,
                        timestamp=timestamp,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 10_000 == 0:
                producer.poll(0)
        if producer.flush(300):
            raise RuntimeError(f"could not deliver every message to {topic} within 300 s")
        if errors:
            raise KafkaException(f"producing to {topic} failed: {errors[0]}")
