"""Create the demo topics on the local broker and fill them with samples: ``events`` (user
actions over the last hour), ``metrics`` (host CPU readings over the last two hours) and
``orders`` (Avro records in the Confluent wire format, their schema in the local Schema
Registry).

Idempotent: a topic that already holds messages is left as it is. ``orders`` is written again
when the registry no longer knows its schema (the local registry keeps schemas in memory).
"""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

BROKERS = "127.0.0.1:19092"
REGISTRY = "http://127.0.0.1:18081/apis/ccompat/v7"
ORDER_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "demo",
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "user", "type": "string"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            },
            {"name": "items", "type": {"type": "array", "items": "string"}},
            {"name": "coupon", "type": ["null", "string"], "default": None},
        ],
    }
)
ACTIONS = ["view", "click", "add_to_cart", "purchase"]
HOSTS = ["web-1", "web-2", "db-1"]


def message_count(admin: AdminClient, name: str) -> int | None:
    """Messages in the topic, or None when it does not exist."""
    metadata = admin.list_topics(timeout=10)
    topic = metadata.topics.get(name)
    if topic is None or topic.error is not None:
        return None
    # Only watermarks are read: the consumer joins no group and commits nothing.
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": "kafkars-demo-probe"})
    try:
        return sum(
            high - low
            for low, high in (
                consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                for p in topic.partitions
            )
        )
    finally:
        consumer.close()


def fill(admin: AdminClient, name: str, partitions: int, messages: list) -> None:
    """Create ``name`` and produce ``messages`` (key, value, timestamp) unless it has data."""
    count = message_count(admin, name)
    if count:
        print(f"topic '{name}' already holds {count} messages")
        return
    if count is None:
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    for key, value, timestamp in messages:
        producer.produce(
            name,
            key=key,
            value=value if isinstance(value, bytes) else json.dumps(value),
            timestamp=timestamp,
            headers=[("source", b"kafkars-demo")],
        )
        producer.poll(0)
    if producer.flush(30):
        raise KafkaException(f"could not deliver every message to {name}")
    print(f"produced {len(messages)} messages to '{name}' ({partitions} partitions)")


def subject_known(subject: str) -> bool:
    try:
        with urllib.request.urlopen(f"{REGISTRY}/subjects/{subject}/versions/latest", timeout=10):
            return True
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise


def fill_orders(admin: AdminClient, rng: random.Random, now_ms: int) -> None:
    """``orders``: Avro values framed by confluent-kafka's AvroSerializer."""
    if message_count(admin, "orders") and not subject_known("orders-value"):
        # Written against a registry that has since restarted: its ids mean nothing now.
        admin.delete_topics(["orders"])["orders"].result(timeout=30)
        while "orders" in admin.list_topics(timeout=10).topics:
            time.sleep(0.2)
    serializer = AvroSerializer(
        SchemaRegistryClient({"url": REGISTRY, "timeout": 10}),
        ORDER_SCHEMA,
        conf={"subject.name.strategy.type": "TOPIC"},
    )
    context = SerializationContext("orders", MessageField.VALUE)
    orders = []
    for i in range(500):
        user = f"user-{rng.randrange(20):02d}"
        order = {
            "order_id": 1000 + i,
            "user": user,
            "amount": Decimal(rng.randrange(100, 50_000)) / 100,
            "items": rng.sample(["book", "pen", "mug", "lamp", "desk"], rng.randrange(1, 4)),
            "coupon": rng.choice([None, None, "WELCOME10"]),
        }
        orders.append((user, serializer(order, context), now_ms - (500 - i) * 7200))
    fill(admin, "orders", 2, orders)


def main() -> int:
    admin = AdminClient({"bootstrap.servers": BROKERS})
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    events = []
    for i in range(1000):
        user = f"user-{rng.randrange(50):02d}"
        event = {"user": user, "action": rng.choice(ACTIONS), "amount": rng.randrange(1, 200)}
        # Spread over the last hour, oldest first.
        events.append((user, event, now_ms - (1000 - i) * 3600))
    fill(admin, "events", 3, events)
    metrics = [
        (host, {"host": host, "cpu": round(rng.uniform(0, 100), 1)}, now_ms - minute * 60_000)
        for minute in range(120, 0, -1)
        for host in HOSTS
    ]
    fill(admin, "metrics", 2, metrics)
    fill_orders(admin, rng, now_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
