"""Create the demo topics on the local broker and fill them with samples: ``events`` (user
actions over the last hour) and ``metrics`` (host CPU readings over the last two hours).

Idempotent: a topic that already holds messages is left as it is.
"""

from __future__ import annotations

import json
import random
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BROKERS = "127.0.0.1:19092"
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
            value=json.dumps(value),
            timestamp=timestamp,
            headers=[("source", b"kafkars-demo")],
        )
        producer.poll(0)
    if producer.flush(30):
        raise KafkaException(f"could not deliver every message to {name}")
    print(f"produced {len(messages)} messages to '{name}' ({partitions} partitions)")


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
