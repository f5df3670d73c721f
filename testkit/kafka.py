"""A real Kafka broker for tests: finding it, and making uniquely named topics full of data.

Test data is produced with ``confluent-kafka`` (its own librdkafka, not ours) with explicit
partitions and timestamps, so every test knows exactly what the topic holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

#: Where the tests look for the broker (``make kafka-up`` starts one there).
BROKERS = os.environ.get("KAFKARS_TEST_BROKERS", "127.0.0.1:19092")

#: 2024-01-01T00:00:00Z: the first timestamp of generated messages.
BASE_TIMESTAMP_MS = 1_704_067_200_000


class BrokerUnavailable(RuntimeError):
    """Raised when no broker answers at :data:`BROKERS`."""


@dataclass(frozen=True)
class Message:
    """One message as produced."""

    partition: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Sequence[tuple[str, bytes | None]] = ()


def check_broker(brokers: str = BROKERS, timeout: float = 10.0) -> None:
    """Fail loudly unless a metadata request to ``brokers`` succeeds."""
    try:
        AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=timeout)
    except KafkaException as error:
        raise BrokerUnavailable(
            f"no Kafka broker answers at {brokers} ({error}); start one with 'make kafka-up'"
        ) from error


def round_robin(
    count: int, partitions: int, start_ms: int = BASE_TIMESTAMP_MS, step_ms: int = 1000
) -> list[Message]:
    """``count`` messages spread over ``partitions`` in turn: message ``i`` goes to partition
    ``i % partitions`` with key ``k<i>``, value ``v<i>`` and timestamp ``start + i * step``."""
    return [
        Message(
            partition=i % partitions,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            timestamp_ms=start_ms + i * step_ms,
        )
        for i in range(count)
    ]


def _legal(text: str) -> str:
    """``text`` with every run of characters Kafka forbids in topic names replaced by ``-``."""
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-")


@dataclass
class TopicFactory:
    """Creates uniquely named topics for one test and deletes them afterwards."""

    brokers: str = BROKERS
    prefix: str = "kafkars-test"
    created: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.admin = AdminClient({"bootstrap.servers": self.brokers})

    def unique_name(self, hint: str = "") -> str:
        """A topic name nobody else uses: ``<prefix>-<hint>-<random>``."""
        parts = [_legal(self.prefix)[:80], _legal(hint)[:60], uuid.uuid4().hex[:10]]
        return "-".join(part for part in parts if part)

    def create(
        self,
        hint: str = "",
        partitions: int = 1,
        messages: Iterable[Message] = (),
        config: dict[str, str] | None = None,
        replication_factor: int = 1,
    ) -> str:
        """Create a topic, produce ``messages`` into it, and return its name."""
        name = self.unique_name(hint)
        futures = self.admin.create_topics(
            [NewTopic(name, partitions, replication_factor, config=config or {})],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)
        self.created.append(name)
        self.produce(name, messages)
        return name

    def produce(self, topic: str, messages: Iterable[Message]) -> None:
        """Produce ``messages`` to ``topic`` and wait until all are acknowledged."""
        messages = list(messages)
        if not messages:
            return
        errors: list[str] = []

        def on_delivery(error, _message) -> None:
            if error is not None:
                errors.append(str(error))

        producer = Producer(
            {"bootstrap.servers": self.brokers, "linger.ms": 5, "enable.idempotence": True}
        )
        for message in messages:
            producer.produce(
                topic,
                value=message.value,
                key=message.key,
                partition=message.partition,
                timestamp=message.timestamp_ms,
                headers=list(message.headers) or None,
                on_delivery=on_delivery,
            )
            producer.poll(0)
        remaining = producer.flush(60)
        if remaining or errors:
            raise RuntimeError(
                f"producing to {topic}: {remaining} undelivered, errors: {errors[:3]}"
            )

    def delete_all(self) -> None:
        """Delete every topic this factory created."""
        if not self.created:
            return
        futures = self.admin.delete_topics(self.created, operation_timeout=30)
        for future in futures.values():
            # Best effort: a leftover uniquely named topic harms no other test.
            with contextlib.suppress(KafkaException):
                future.result(timeout=60)
        self.created.clear()
