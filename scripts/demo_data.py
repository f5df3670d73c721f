"""Create the demo topic ``events`` on the local broker and fill it with sample events.

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
TOPIC = "events"
PARTITIONS = 3
MESSAGES = 1000
ACTIONS = ["view", "click", "add_to_cart", "purchase"]


def message_count(admin: AdminClient) -> int | None:
    """Messages in the topic, or None when it does not exist."""
    metadata = admin.list_topics(timeout=10)
    topic = metadata.topics.get(TOPIC)
    if topic is None or topic.error is not None:
        return None
    # Only watermarks are read: the consumer joins no group and commits nothing.
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": "kafkars-demo-probe"})
    try:
        return sum(
            high - low
            for low, high in (
                consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
                for p in topic.partitions
            )
        )
    finally:
        consumer.close()


def main() -> int:
    admin = AdminClient({"bootstrap.servers": BROKERS})
    count = message_count(admin)
    if count:
        print(f"topic '{TOPIC}' already holds {count} messages")
        return 0
    if count is None:
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(timeout=30)

    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    for i in range(MESSAGES):
        user = f"user-{rng.randrange(50):02d}"
        event = {"user": user, "action": rng.choice(ACTIONS), "amount": rng.randrange(1, 200)}
        producer.produce(
            TOPIC,
            key=user,
            value=json.dumps(event),
            # Spread over the last hour, oldest first.
            timestamp=now_ms - (MESSAGES - i) * 3600,
            headers=[("source", b"kafkars-demo")],
        )
        producer.poll(0)
    if producer.flush(30):
        raise KafkaException(f"could not deliver every event to {TOPIC}")
    print(f"produced {MESSAGES} events to '{TOPIC}' ({PARTITIONS} partitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
