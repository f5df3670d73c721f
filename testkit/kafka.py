"""A real Kafka broker for tests: finding it, and making uniquely named topics full of data.

Test data is produced with ``confluent-kafka`` (its own librdkafka, not ours) with explicit
partitions and timestamps, so every test knows exactly what the topic holds.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic, OffsetSpec

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


def shuffled_times(
    count: int, partitions: int, seed: int, prefix: str = "", start_ms: int = BASE_TIMESTAMP_MS
) -> list[Message]:
    """``count`` messages over ``partitions`` partitions from ``start_ms``, timestamps rising
    within each partition but interleaving irregularly across them, with ties: message ``i``
    has key ``<prefix>k<i>`` and value ``<prefix>v<i>``."""
    rng = random.Random(seed)
    last = [start_ms] * partitions
    messages = []
    for i in range(count):
        partition = rng.randrange(partitions)
        last[partition] += rng.choice([0, 1000, 2000, 3000])
        key, value = f"{prefix}k{i}".encode(), f"{prefix}v{i}".encode()
        messages.append(Message(partition, key, value, last[partition]))
    return messages


def now_ms() -> int:
    """The wall clock in epoch milliseconds (as Kafka timestamps count)."""
    return int(time.time() * 1000)


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
        producer_config: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a topic, produce ``messages`` into it, and return its name.

        ``producer_config`` adds to or overrides the producer's settings (see :meth:`produce`).
        """
        name = self.unique_name(hint)
        futures = self.admin.create_topics(
            [NewTopic(name, partitions, replication_factor, config=config or {})],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)
        self.created.append(name)
        self.produce(name, messages, producer_config=producer_config)
        return name

    def delete_records(
        self, topic: str, partition: int, before: int, timeout: float = 30.0
    ) -> None:
        """Delete the records of ``partition`` below offset ``before``, as retention would: the
        log then starts at ``before``."""
        deleted = self.admin.delete_records([TopicPartition(topic, partition, before)])
        for future in deleted.values():
            future.result(timeout=timeout)

    def add_partitions(self, topic: str, total: int, timeout: float = 30.0) -> None:
        """Grow ``topic`` to ``total`` partitions (Kafka's CreatePartitions), and wait until
        the cluster's metadata lists them all with a leader, so that producing to the new
        ones works at once."""
        futures = self.admin.create_partitions([NewPartitions(topic, total)], operation_timeout=30)
        futures[topic].result(timeout=60)
        deadline = time.monotonic() + timeout
        while True:
            partitions = self.admin.list_topics(topic, timeout=30).topics[topic].partitions
            if len(partitions) == total and all(p.leader >= 0 for p in partitions.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {total} partitions not ready after {timeout}s")
            time.sleep(0.1)

    def produce(
        self,
        topic: str,
        messages: Iterable[Message],
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Produce ``messages`` to ``topic`` and wait until all are acknowledged.

        One idempotent producer sends them in order, so each partition's messages get
        consecutive offsets in the order given. ``producer_config`` adds to or overrides the
        producer's settings (``compression.type``, ``message.max.bytes``, ``batch.size``, ...).
        """
        messages = list(messages)
        if not messages:
            return
        producer, errors = self._producer({"enable.idempotence": True, **(producer_config or {})})
        for message in messages:
            self._send(producer, topic, message, errors)
        self._flush(producer, topic, errors)

    def _producer(self, config: Mapping[str, Any]) -> tuple[Producer, list[str]]:
        """A producer for the test broker, and the list its delivery errors are collected in."""
        producer = Producer({"bootstrap.servers": self.brokers, "linger.ms": 5, **config})
        return producer, []

    @staticmethod
    def _flush(producer: Producer, topic: str, errors: list[str]) -> None:
        """Wait until everything sent is acknowledged; fail on any delivery error."""
        remaining = producer.flush(60)
        if remaining or errors:
            raise RuntimeError(
                f"producing to {topic}: {remaining} undelivered, errors: {errors[:3]}"
            )

    @staticmethod
    def _send(producer: Producer, topic: str, message: Message, errors: list[str]) -> None:
        """Hand one message to ``producer``, waiting for room in its queue if it is full; a
        delivery error is appended to ``errors``."""

        def on_delivery(error, _message) -> None:
            if error is not None:
                errors.append(str(error))

        while True:
            try:
                producer.produce(
                    topic,
                    value=message.value,
                    key=message.key,
                    partition=message.partition,
                    timestamp=message.timestamp_ms,
                    headers=list(message.headers) or None,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)

    def produce_transactions(
        self,
        topic: str,
        transactions: Iterable[tuple[Sequence[Message], bool]],
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Produce each ``(messages, commit)`` of ``transactions`` as one transaction of a single
        transactional producer, committing it when ``commit`` is true and aborting it otherwise;
        then wait until every transaction marker is written (:meth:`wait_stable`).

        In each partition a transaction's records take consecutive offsets, followed by one
        offset for its commit or abort marker (only in partitions the transaction wrote to).
        """
        producer, errors = self._producer(
            {"transactional.id": f"{topic}-producer", **(producer_config or {})}
        )
        producer.init_transactions(60)
        for messages, commit in transactions:
            producer.begin_transaction()
            for message in messages:
                self._send(producer, topic, message, errors)
            # Every record is acknowledged before the transaction ends, also an aborted one's:
            # aborted records then surely take offsets in the log.
            self._flush(producer, topic, errors)
            if commit:
                producer.commit_transaction(60)
            else:
                producer.abort_transaction(60)
        self.wait_stable(topic)

    def consumer_groups(self) -> set[str]:
        """The ids of every consumer group the cluster knows."""
        result = self.admin.list_consumer_groups(request_timeout=10).result()
        return {group.group_id for group in result.valid}

    def committed_offsets(self, group: str, topic: str, partitions: int) -> list[int]:
        """The offsets ``group`` has committed for partitions ``0..partitions-1`` of ``topic``
        (none committed: every offset is -1001, ``OFFSET_INVALID``)."""
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for p in range(partitions)]
        )
        [future] = self.admin.list_consumer_group_offsets([request]).values()
        return [tp.offset for tp in future.result(timeout=30).topic_partitions]

    def end_offsets(self, topic: str, isolation_level: IsolationLevel) -> dict[int, int]:
        """Per partition of ``topic``: the high watermark (``READ_UNCOMMITTED``) or the last
        stable offset (``READ_COMMITTED``)."""
        metadata = self.admin.list_topics(topic, timeout=30).topics[topic]
        request = {TopicPartition(topic, p): OffsetSpec.latest() for p in metadata.partitions}
        futures = self.admin.list_offsets(
            request, isolation_level=isolation_level, request_timeout=30
        )
        return {tp.partition: future.result().offset for tp, future in futures.items()}

    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition of ``topic``: the first offset whose timestamp is >= ``timestamp_ms``,
        as the broker answers ListOffsets (every offset counts, also a transaction marker's,
        which carries the time it was written), or the high watermark when there is none."""
        metadata = self.admin.list_topics(topic, timeout=30).topics[topic]
        request = {
            TopicPartition(topic, p): OffsetSpec.for_timestamp(timestamp_ms)
            for p in metadata.partitions
        }
        futures = self.admin.list_offsets(request, request_timeout=30)
        found = {tp.partition: future.result().offset for tp, future in futures.items()}
        ends = self.end_offsets(topic, IsolationLevel.READ_UNCOMMITTED)
        return {p: ends[p] if offset < 0 else offset for p, offset in found.items()}

    def wait_stable(self, topic: str, timeout: float = 30.0) -> None:
        """Wait until no transaction is open in ``topic``: every partition's last stable offset
        equals its high watermark (commit and abort markers are written asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            committed = self.end_offsets(topic, IsolationLevel.READ_COMMITTED)
            written = self.end_offsets(topic, IsolationLevel.READ_UNCOMMITTED)
            if committed == written:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{topic}: transactions still open after {timeout}s: "
                    f"last stable offsets {committed}, high watermarks {written}"
                )
            time.sleep(0.1)

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


class Heartbeat:
    """Data that keeps flowing: a thread producing one message (key and value ``beat``, the
    current time) to every partition of ``topic`` every ``period_s`` seconds until
    :meth:`close`. ``beats`` counts the rounds acknowledged so far."""

    def __init__(
        self, factory: TopicFactory, topic: str, partitions: int, period_s: float = 0.5
    ) -> None:
        self.factory = factory
        self.topic = topic
        self.partitions = partitions
        self.period_s = period_s
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafkars-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        producer, errors = self.factory._producer({"linger.ms": 0})
        while not self._stop.is_set():
            stamp = now_ms()
            for partition in range(self.partitions):
                message = Message(partition, b"beat", b"beat", stamp)
                self.factory._send(producer, self.topic, message, errors)
            self.factory._flush(producer, self.topic, errors)
            self.beats += 1
            self._stop.wait(self.period_s)

    def close(self) -> None:
        """Stop producing; wait for the thread."""
        self._stop.set()
        self._thread.join(30)

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class PacedProduction:
    """What :func:`produce_paced` sent and what the broker acknowledged, per partition (lists
    indexed by partition number; partitions that got nothing have count 0 and first -1)."""

    sent: int
    #: From the first message to the last send, before the final flush (s).
    seconds: float
    #: Messages still unacknowledged when the final flush gave up.
    undelivered: int
    errors: list[str]
    first: list[int]
    #: The last acknowledged offset + 1 (0 when nothing was acknowledged).
    ends: list[int]
    counts: list[int]

    @property
    def rate(self) -> float:
        """The achieved send rate (msgs/s)."""
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def dense(self) -> bool:
        """Whether every partition's acknowledged offsets leave no gap (count = end - first),
        so a reader must have seen exactly the offsets below each end."""
        return all(
            self.counts[p] == self.ends[p] - self.first[p]
            for p in range(len(self.counts))
            if self.counts[p]
        )


def produce_paced(
    brokers: str,
    topic: str,
    *,
    rate: float,
    total: int,
    partitions: Sequence[int],
    partition_count: int,
    value: bytes,
    key_for: Callable[[int], bytes | None] | None = None,
    on_tick: Callable[[float], None] | None = None,
    linger_ms: int = 0,
    flush_timeout_s: float = 60.0,
) -> PacedProduction:
    """Produce ``total`` messages at ``rate`` msgs/s, round-robin over ``partitions`` of
    ``topic`` (which has ``partition_count``), each stamped with its send time (ms) and keyed
    ``key_for(i)`` (no key when None).

    Paced against a schedule (message ``i`` is due ``i / rate`` s after the start), so a slow
    moment is caught up with a short burst rather than lost. After each burst, ``poll(0)``
    serves the delivery callbacks and ``on_tick(elapsed_s)`` runs. The topic's metadata is
    fetched first: a message produced before the producer knows its partition's leader would
    wait in its queue, and its latency would be that round trip's."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "compression.type": "none",
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    producer.list_topics(topic, timeout=30)
    first = [-1] * partition_count
    last = [-1] * partition_count
    counts = [0] * partition_count
    errors: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            errors.append(str(error))
            return
        partition, offset = message.partition(), message.offset()
        if first[partition] < 0 or offset < first[partition]:
            first[partition] = offset
        last[partition] = max(last[partition], offset)
        counts[partition] += 1

    sent = 0
    started = time.perf_counter()
    while sent < total:
        elapsed = time.perf_counter() - started
        due = min(total, int(elapsed * rate) + 1)
        while sent < due:
            try:
                producer.produce(
                    topic,
                    value,
                    key=key_for(sent) if key_for is not None else None,
                    partition=partitions[sent % len(partitions)],
                    timestamp=now_ms(),
                    on_delivery=delivered,
                )
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        if on_tick is not None:
            on_tick(elapsed)
        wait = started + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    seconds = time.perf_counter() - started
    undelivered = producer.flush(flush_timeout_s)
    return PacedProduction(
        sent=sent,
        seconds=seconds,
        undelivered=undelivered,
        errors=errors,
        first=first,
        ends=[last[p] + 1 if counts[p] else 0 for p in range(partition_count)],
        counts=counts,
    )
