"""Protobuf payloads decoded into typed columns, written by confluent-kafka's
ProtobufSerializer against the real registry (which hands schemas back as a base64
FileDescriptorProto), and from inline .proto text."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

import kafkars
from testkit.kafka import BROKERS
from testkit.registry import RegistryProducer

SHOP = """
syntax = "proto3";
package shop;

import "google/protobuf/timestamp.proto";

message Customer {
  string name = 1;
  int32 tier = 2;
}

message Order {
  enum Status {
    STATUS_UNKNOWN = 0;
    PLACED = 1;
    SHIPPED = 2;
  }
  message Line {
    string sku = 1;
    int64 qty = 2;
  }
  int64 id = 1;
  Customer customer = 2;
  repeated Line lines = 3;
  repeated string tags = 4;
  map<string, int64> counters = 5;
  oneof payment {
    string card = 6;
    string voucher = 7;
  }
  Status status = 8;
  google.protobuf.Timestamp placed = 9;
  optional double discount = 10;
  bytes blob = 11;
}
"""

ORDERS: list[dict[str, Any]] = [
    {
        "id": "1",
        "customer": {"name": "ann", "tier": 2},
        "lines": [{"sku": "pen", "qty": "3"}, {"sku": "mug", "qty": "1"}],
        "tags": ["gift"],
        "counters": {"views": "7"},
        "card": "visa",
        "status": "SHIPPED",
        "placed": "2024-01-01T10:00:00.250Z",
        "discount": 0.5,
        "blob": "AAE=",
    },
    {"id": "2", "voucher": "V-10", "status": "PLACED"},
]


def scan(con, topic: str, arguments: str) -> list[Any]:
    return [
        row[0]
        for row in con.execute(
            f"SELECT value FROM kafka_scan('{topic}', brokers := '{BROKERS}', {arguments}) "
            'ORDER BY "offset"'
        ).fetchall()
    ]


def manager_values(topic: str, **options: Any) -> list[Any]:
    with kafkars.ConsumerManager(
        {"bootstrap.servers": BROKERS}, [kafkars.SourceTopic.from_earliest(topic)], **options
    ) as manager:
        values: list[Any] = []
        while not manager.is_live():
            values.extend(manager.poll(timeout_ms=1000).column("value").to_pylist())
        return values


# Nested messages, repeated, map, oneof, enum, Timestamp, optional presence and bytes,
# for a message that is not the first in its file (message indexes), in SQL and Python.
def test_protobuf_every_shape(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("orders")
    registry.produce_protobuf(topic, SHOP, "shop.Order", ORDERS)
    con.execute("SET TimeZone = 'UTC'")
    first, second = scan(
        con, topic, f"value_format := 'protobuf', schema_registry := '{registry.url}'"
    )
    assert first["id"] == 1
    assert first["customer"] == {"name": "ann", "tier": 2}
    assert first["lines"] == [{"sku": "pen", "qty": 3}, {"sku": "mug", "qty": 1}]
    assert first["tags"] == ["gift"]
    assert first["counters"] == {"views": 7}
    assert first["card"] == "visa"
    assert first["voucher"] is None
    assert first["status"] == "SHIPPED"
    assert first["placed"] == dt.datetime(2024, 1, 1, 10, 0, 0, 250000, tzinfo=dt.timezone.utc)
    assert first["discount"] == 0.5
    assert first["blob"] == b"\x00\x01"
    # Absent message fields and optional scalars are NULL; implicit scalars their default.
    assert second["id"] == 2
    assert second["customer"] is None
    assert second["lines"] == []
    assert second["card"] is None
    assert second["voucher"] == "V-10"
    assert second["status"] == "PLACED"
    assert second["placed"] is None
    assert second["discount"] is None

    values = manager_values(topic, value_format="protobuf", schema_registry=registry.url)
    assert [v["id"] for v in values] == [1, 2]
    assert values[0]["lines"] == [{"sku": "pen", "qty": 3}, {"sku": "mug", "qty": 1}]
    assert values[1]["voucher"] == "V-10"


# A nested message as the value (message indexes [1, 0]), read with an inline schema.
def test_protobuf_nested_message_inline(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("lines")
    registry.produce_protobuf(topic, SHOP, "shop.Order.Line", [{"sku": "lamp", "qty": "4"}])
    rows = scan(
        con,
        topic,
        f"value_format := 'protobuf', value_schema := $${SHOP}$$, "
        "value_message := 'shop.Order.Line'",
    )
    assert rows == [{"sku": "lamp", "qty": 4}]


# Field-number evolution: records written before a field existed read with the newer schema.
def test_protobuf_evolution_by_field_number(con, topics, registry: RegistryProducer) -> None:
    old = 'syntax = "proto3"; package ev; message Item { string name = 1; }'
    new = (
        'syntax = "proto3"; package ev; message Item { string name = 1; optional int32 size = 2; }'
    )
    topic = topics.create("evolve")
    registry.produce_protobuf(topic, old, "ev.Item", [{"name": "a"}])
    registry.produce_protobuf(topic, new, "ev.Item", [{"name": "b", "size": 3}])
    rows = scan(con, topic, f"value_format := 'protobuf', schema_registry := '{registry.url}'")
    assert rows == [{"name": "a", "size": None}, {"name": "b", "size": 3}]


# Non-framed records and a malformed inline schema give clear errors.
def test_protobuf_errors(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("bad")
    registry.produce_protobuf(topic, SHOP, "shop.Customer", [{"name": "x"}])
    registry.produce_raw(topic, [b"\x00\x01"])
    with pytest.raises(duckdb.Error, match=rf"topic '{topic}' partition 0 offset 1"):
        scan(con, topic, f"value_format := 'protobuf', schema_registry := '{registry.url}'")
    rows = con.execute(
        f"SELECT value, decode_error FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'protobuf', schema_registry := '{registry.url}', "
        "on_error := 'null') ORDER BY \"offset\""
    ).fetchall()
    assert rows[0] == ({"name": "x", "tier": 0}, None)
    assert rows[1][0] is None
    assert rows[1][1].startswith("value")

    with pytest.raises(duckdb.Error, match="value_schema"):
        scan(con, topic, "value_format := 'protobuf', value_schema := 'message {'")
    with pytest.raises(kafkars.DecodeError, match="value_schema"):
        manager_values(topic, value_format="protobuf", value_schema="message {")
