"""The benchmark topics: their shapes, and producing them once.

Every dataset is produced with confluent-kafka at full speed, uncompressed
(``compression.type=none``), without keys, with explicit timestamps one millisecond apart from
2024-01-01 in production order, so a ``lookback`` of a minute never reaches them. The
many-partition set is the exception: it is produced one partition after another (so each
partition's messages leave in a few whole batches, not one message per batch), but stamped as if
produced round-robin, so its timestamps interleave across partitions like the others'. A topic is
reused while its partitions hold exactly the expected messages (the 100-byte set may hold more:
the latency measurement appends fresh messages to it); otherwise it is deleted and produced again.

The values are random bytes, except in the Avro set: :data:`ORDER_SCHEMA` records, message
``i`` being :func:`order` ``(i)``, written by confluent-kafka's ``AvroSerializer`` (the Confluent
wire format: byte 0, the 4-byte schema id, the Avro body) under the subject ``<topic>-value`` of
the Schema Registry. That registry keeps its schemas in memory, so the Avro set is reused only
while registering its schema again gives the id framed in its records.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

#: 2024-01-01T00:00:00Z, the first message's timestamp.
BASE_TIMESTAMP_MS = 1_704_067_200_000

#: The Confluent-compatible API of the local Schema Registry (``make registry-up``).
REGISTRY_URL = os.environ.get(
    "KAFKARS_SCHEMA_REGISTRY", "http://127.0.0.1:18081/apis/ccompat/v7"
).rstrip("/")

#: The Avro set's value schema: 8 fields, a decimal and a timestamp among them.
ORDER_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "kafkars.bench",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "user", "type": "string"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            },
            {"name": "quantity", "type": "int"},
            {"name": "price", "type": "double"},
            {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "country", "type": "string"},
            {"name": "flag", "type": "boolean"},
        ],
    }
)
#: Every value of the Avro set is this long: the 5 bytes of framing, then 6 (order_id) + 66
#: (user: a SHA-256 in hex) + 4 (amount: 3 bytes of two's complement) + 1 (quantity) + 8
#: (price) + 6 (created) + 3 (country) + 1 (flag). Producing checks it.
ORDER_BYTES = 100
#: ``order_id`` of message 0; ids from here on take 6 bytes as Avro longs.
ORDER_ID_BASE = 100_000_000_000
#: Amounts in cents run over [MIN, MAX]: every one takes 3 bytes of two's complement.
AMOUNT_CENTS_MIN, AMOUNT_CENTS_MAX = 2**15, 2**23 - 1
USERS = 50_000
COUNTRIES = ("DE", "FR", "US", "GB", "JP", "BR", "IN", "NL", "ES", "IT", "SE", "PL")


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
    #: ``"bytes"`` (random bytes) or ``"avro"`` (:func:`order` records, ``size`` bytes each).
    value_format: str = "bytes"
    #: Produced one partition after another, stamped as if round-robin (see :meth:`stamped`);
    #: for even sets only.
    by_partition: bool = False

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

    def stamped(self) -> Iterator[tuple[int, int]]:
        """(partition, timestamp in ms) of each message in production order.

        Message ``i`` of :meth:`schedule` is stamped ``BASE_TIMESTAMP_MS + i``. A
        ``by_partition`` set is produced partition after partition instead, message ``k`` of
        partition ``p`` stamped ``BASE_TIMESTAMP_MS + k * partitions + p``: the same messages
        and timestamps as round-robin production, in an order that fills whole producer
        batches (round-robin over 1,000 partitions would send one tiny batch per message)."""
        if not self.by_partition:
            for i, partition in enumerate(self.schedule()):
                yield partition, BASE_TIMESTAMP_MS + i
            return
        for partition, count in enumerate(self.counts):
            for k in range(count):
                yield partition, BASE_TIMESTAMP_MS + k * self.partitions + partition

    @property
    def amount_sum(self) -> Decimal | None:
        """The sum of ``amount`` over an Avro set's records (None for the others)."""
        return avro_amount_sum(self.messages) if self.value_format == "avro" else None


def amount_cents(i: int) -> int:
    """Message ``i``'s amount in cents, spread over the 3-byte range."""
    span = AMOUNT_CENTS_MAX - AMOUNT_CENTS_MIN + 1
    return AMOUNT_CENTS_MIN + (i * 7919) % span


@functools.cache
def avro_amount_sum(messages: int) -> Decimal:
    """The sum of ``amount`` over the first ``messages`` records."""
    return Decimal(sum(amount_cents(i) for i in range(messages))).scaleb(-2)


@functools.cache
def _users() -> tuple[str, ...]:
    return tuple(hashlib.sha256(f"user-{u}".encode()).hexdigest() for u in range(USERS))


def order(i: int) -> dict[str, Any]:
    """Message ``i`` of the Avro set, as ``AvroSerializer`` takes it. ``created`` is its Kafka
    timestamp."""
    cents = amount_cents(i)
    quantity = 1 + (i * 31) % 63
    return {
        "order_id": ORDER_ID_BASE + i,
        "user": _users()[(i * 7) % USERS],
        "amount": Decimal(cents).scaleb(-2),
        "quantity": quantity,
        "price": round(cents / quantity) / 100,
        "created": BASE_TIMESTAMP_MS + i,
        "country": COUNTRIES[i % len(COUNTRIES)],
        "flag": i % 3 == 0,
    }


def even(total: int, partitions: int = 8) -> tuple[int, ...]:
    return (total // partitions,) * partitions


def skewed(unit: int, partitions: int = 8, factor: int = 20) -> tuple[int, ...]:
    return (unit * factor,) + (unit,) * (partitions - 1)


#: Partitions of the many-partition set.
MANY_PARTITIONS = 1000


def datasets(quick: bool) -> dict[str, Dataset]:
    """The datasets by role: ``100b``, ``1kb``, ``skew``, ``skew-10x``, ``avro``, ``ray``,
    ``100b-1000p``. Quick mode uses a tenth of each, under other names."""
    if quick:
        names = ("bench-quick-100b-200k", "bench-quick-1kb-20k", "bench-quick-skew")
        avro, ray, scale = "bench-quick-avro-100k", "bench-quick-ray-800k", 10
    else:
        names = ("bench-100b-2m", "bench-1kb-200k", "bench-skew")
        avro, ray, scale = "bench-avro-1m", "bench-ray-8m", 1
    sets = [
        Dataset(names[0], 100, even(2_000_000 // scale), "throughput, small messages", grows=True),
        Dataset(names[1], 1024, even(200_000 // scale), "throughput, 1 KiB"),
        Dataset(names[2], 1024, skewed(10_000 // scale), "throughput and memory, skewed"),
        Dataset(names[2] + "-10x", 1024, skewed(100_000 // scale), "memory growth, skewed x10"),
        Dataset(
            avro,
            ORDER_BYTES,
            even(1_000_000 // scale),
            "Avro decoding, Confluent wire format",
            value_format="avro",
        ),
        # A Ray Data job pays seconds of start-up (executor, task scheduling, worker imports)
        # whatever reads: the set is large enough for the read itself to weigh.
        Dataset(ray, 100, even(8_000_000 // scale), "Ray Data, small messages"),
        # The 100-byte set's messages over 1,000 partitions instead of 8.
        Dataset(
            f"{names[0]}-{MANY_PARTITIONS}p",
            100,
            even(2_000_000 // scale, MANY_PARTITIONS),
            f"many partitions: the 100-byte set over {MANY_PARTITIONS:,}",
            by_partition=True,
        ),
    ]
    roles = ("100b", "1kb", "skew", "skew-10x", "avro", "ray", "100b-1000p")
    return dict(zip(roles, sets, strict=True))


#: How long a watermark request is retried while the broker reports a retriable error (s).
WATERMARK_RETRY_S = 30


class Broker:
    """Admin, watermarks and production against one bootstrap address; the Avro set's schemas
    in the Schema Registry at ``registry``."""

    def __init__(self, brokers: str, registry: str = REGISTRY_URL) -> None:
        self.brokers = brokers
        self.registry = registry.rstrip("/")
        self.admin = AdminClient({"bootstrap.servers": brokers})

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]] | None:
        """Low and high watermark per partition, or None when the topic does not exist.

        Two batched ListOffsets requests (earliest, latest) for all partitions: one round trip
        per partition would take seconds on the 1,000-partition set."""
        metadata = self.admin.list_topics(timeout=30)
        if topic not in metadata.topics:
            return None
        partitions = sorted(metadata.topics[topic].partitions)

        def offsets(spec: OffsetSpec) -> dict[int, int]:
            deadline = time.monotonic() + WATERMARK_RETRY_S
            while True:
                futures = self.admin.list_offsets(
                    {TopicPartition(topic, p): spec for p in partitions},
                    isolation_level=IsolationLevel.READ_UNCOMMITTED,
                    request_timeout=30,
                )
                try:
                    return {tp.partition: future.result().offset for tp, future in futures.items()}
                except KafkaException as error:
                    # Right after the broker starts, it answers UNKNOWN_LEADER_EPOCH until its
                    # partitions are loaded; the admin client reports that instead of retrying.
                    if not error.args[0].retriable() or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

        low, high = offsets(OffsetSpec.earliest()), offsets(OffsetSpec.latest())
        return {p: (low[p], high[p]) for p in partitions}

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
        """Produce ``dataset`` unless it is already there; the seconds it took, or None.

        An Avro set is there only if the registry still gives its records' schema id to its
        schema: it keeps schemas in memory, so after a restart the ids framed in the records
        mean nothing (or another schema)."""
        if self.is_complete(dataset):
            if dataset.value_format != "avro":
                return None
            framed, registered = self.framed_schema_id(dataset.name), self.register(dataset)
            if framed == registered:
                return None
            if log:
                print(
                    f"{dataset.name}: its records carry schema id {framed}, the registry now "
                    f"gives its schema id {registered}: producing it again",
                    flush=True,
                )
        self.delete(dataset.name)
        self.create(dataset.name, dataset.partitions)
        started = time.perf_counter()
        self.produce(dataset)
        seconds = time.perf_counter() - started
        if not self.is_complete(dataset):
            raise RuntimeError(f"{dataset.name} is incomplete after producing it")
        if dataset.value_format == "avro":
            framed, registered = self.framed_schema_id(dataset.name), self.register(dataset)
            if framed != registered:
                raise RuntimeError(
                    f"{dataset.name}'s records carry schema id {framed}, not {registered}"
                )
        if log:
            print(
                f"produced {dataset.name}: {dataset.messages:,} x {dataset.size} B in "
                f"{seconds:.1f} s",
                flush=True,
            )
        return seconds

    def create(self, topic: str, partitions: int, timeout: float = 120.0) -> None:
        """Create ``topic`` and wait until the metadata lists every partition with a leader:
        a broker takes a while to bring 1,000 partitions online, and messages produced to a
        partition without a leader wait in the producer's queue."""
        self.admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=60)
        deadline = time.monotonic() + timeout
        while True:
            found = self.admin.list_topics(topic, timeout=30).topics.get(topic)
            if (
                found is not None
                and found.error is None
                and len(found.partitions) == partitions
                and all(p.leader >= 0 for p in found.partitions.values())
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {partitions} partitions not ready after {timeout} s")
            time.sleep(0.2)

    def create_fresh(self, prefix: str, partitions: int) -> str:
        """Create a new, uniquely named, empty topic ``<prefix>-<random>``; return its name."""
        topic = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.create(topic, partitions)
        return topic

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
        if dataset.value_format == "avro":
            self._send(dataset.name, self._orders(dataset))
            return
        value = os.urandom(dataset.size)
        self._send(
            dataset.name,
            ((partition, timestamp, value) for partition, timestamp in dataset.stamped()),
        )

    def append_fresh(self, topic: str, count: int, size: int, partitions: int) -> None:
        """``count`` messages stamped now, spread over the partitions."""
        now_ms = int(time.time() * 1000)
        value = os.urandom(size)
        self._send(topic, ((i % partitions, now_ms, value) for i in range(count)))

    # --- the Avro set ---------------------------------------------------------------------------

    def registry_client(self) -> SchemaRegistryClient:
        """A confluent-kafka Schema Registry client with a request timeout: the local registry
        now and then never answers a request on a kept-alive connection."""
        return SchemaRegistryClient({"url": self.registry, "timeout": 10})

    def register(self, dataset: Dataset) -> int:
        """Register :data:`ORDER_SCHEMA` under ``<topic>-value`` (a no-op when it is there)
        and return its id."""
        try:
            return self.registry_client().register_schema(
                f"{dataset.name}-value", Schema(ORDER_SCHEMA, "AVRO")
            )
        except Exception as error:
            raise RuntimeError(
                f"the Schema Registry at {self.registry} refuses or does not answer ({error}); "
                "start it with 'make registry-up'"
            ) from error

    def framed_schema_id(self, topic: str) -> int | None:
        """The schema id in the Confluent framing of the first message of partition 0 (None
        when it is not framed)."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.brokers,
                "group.id": "kafkars-bench-admin",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    raise KafkaException(message.error())
                value = message.value() or b""
                if len(value) < 5 or value[0] != 0:
                    return None
                return int(struct.unpack(">I", value[1:5])[0])
            raise RuntimeError(f"no message from {topic}[0] within 30 s")
        finally:
            consumer.close()

    def _orders(self, dataset: Dataset) -> Iterator[tuple[int, int, bytes]]:
        """(partition, timestamp, value) of each record of an Avro set, its value framed by
        ``AvroSerializer``, which registers the schema under ``<topic>-value``."""
        # The TOPIC strategy: the default one first asks the registry for /associations, which
        # this registry answers with 404 (and now and then not at all).
        serializer = AvroSerializer(
            self.registry_client(), ORDER_SCHEMA, conf={"subject.name.strategy.type": "TOPIC"}
        )
        context = SerializationContext(dataset.name, MessageField.VALUE)
        for i, partition in enumerate(dataset.schedule()):
            record = order(i)
            value = serializer(record, context)
            if len(value) != dataset.size:
                raise RuntimeError(
                    f"record {i} of {dataset.name} is {len(value)} bytes, not {dataset.size}: "
                    f"{record}"
                )
            yield partition, record["created"], value

    def _send(self, topic: str, messages: Iterator[tuple[int, int, bytes]]) -> None:
        """Produce (partition, timestamp, value) messages and wait until all are delivered."""
        producer = self.producer()
        errors: list[str] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                errors.append(str(error))

        for i, (partition, timestamp, value) in enumerate(messages):
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
