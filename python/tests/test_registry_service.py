"""The local Schema Registry and the framed-data helpers in ``testkit.registry`` work end to end.

No kafkars here: records written with confluent-kafka's serializers are read back with
confluent-kafka's own deserializers, and the registry's REST answers are checked as they are.
The tests that decode with kafkars rely on exactly this.
"""

from __future__ import annotations

import base64
import datetime
import json
import struct

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, json_format

from testkit.kafka import BASE_TIMESTAMP_MS, TopicFactory
from testkit.registry import (
    SERDE_CONF,
    RegistryProducer,
    RegistryUnavailable,
    check_registry,
    consume,
    framed_schema_id,
    get_json,
    key_subject,
    protobuf_class,
    registry_client,
    value_subject,
)

AVRO_VALUE = json.dumps(
    {
        "type": "record",
        "name": "Reading",
        "namespace": "kafkars.test",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "sensor", "type": "string"},
            {"name": "celsius", "type": ["null", "double"], "default": None},
            {"name": "ok", "type": "boolean"},
            {"name": "raw", "type": "bytes"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "int"}},
            {
                "name": "level",
                "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]},
            },
            {
                "name": "where",
                "type": {
                    "type": "record",
                    "name": "Place",
                    "fields": [
                        {"name": "room", "type": "string"},
                        {"name": "floor", "type": "int"},
                    ],
                },
            },
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
)

AVRO_KEY = json.dumps(
    {"type": "record", "name": "ReadingKey", "fields": [{"name": "sensor", "type": "string"}]}
)

PROTO = """
syntax = "proto3";
package kafkars.test;

import "google/protobuf/timestamp.proto";

// Not the first message of the file: its message index is 1, not 0.
message Header {
  string source = 1;
}

enum Status {
  STATUS_UNSPECIFIED = 0;
  OPEN = 1;
  SHIPPED = 2;
}

message Order {
  message Line {
    string sku = 1;
    int32 quantity = 2;
  }
  int64 id = 1;
  repeated Line lines = 2;
  map<string, int64> counters = 3;
  oneof payment {
    string card = 4;
    int32 cash_cents = 5;
  }
  Status status = 6;
  google.protobuf.Timestamp placed_at = 7;
  repeated string notes = 8;
  bytes blob = 9;
}
"""

JSON_SCHEMA = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Event",
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "score": {"type": ["number", "null"]},
            "labels": {"type": "array", "items": {"type": "string"}},
            "meta": {
                "type": "object",
                "properties": {"a": {"type": "boolean"}},
                "additionalProperties": False,
            },
        },
        "required": ["id", "name"],
        "additionalProperties": False,
    }
)


def at_ms(offset_s: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(
        (BASE_TIMESTAMP_MS + offset_s * 1000) / 1000, tz=datetime.timezone.utc
    )


def test_avro_values_and_keys(registry: RegistryProducer, topics: TopicFactory) -> None:
    topic = topics.create("avro", partitions=2)
    values = [
        {
            "id": 1,
            "sensor": "s1",
            "celsius": 21.5,
            "ok": True,
            "raw": b"\x00\xff",
            "tags": ["a", "b"],
            "attrs": {"x": 1},
            "level": "LOW",
            "where": {"room": "lab", "floor": 2},
            "at": at_ms(0),
        },
        {
            "id": -(2**63),
            "sensor": "",
            "celsius": None,
            "ok": False,
            "raw": b"",
            "tags": [],
            "attrs": {},
            "level": "HIGH",
            "where": {"room": "é😀", "floor": -1},
            "at": at_ms(1),
        },
    ]
    keys = [{"sensor": "s1"}, {"sensor": "s2"}]
    timestamps = [BASE_TIMESTAMP_MS, BASE_TIMESTAMP_MS + 1000]
    produced = registry.produce_avro(
        topic,
        AVRO_VALUE,
        values,
        partition=1,
        keys=keys,
        key_schema=AVRO_KEY,
        timestamps=timestamps,
    )

    assert [(p.partition, p.offset) for p in produced] == [(1, 0), (1, 1)]
    value_id = get_json(f"/subjects/{value_subject(topic)}/versions/latest")["id"]
    key_id = get_json(f"/subjects/{key_subject(topic)}/versions/latest")["id"]
    assert value_id != key_id
    for record in produced:
        assert record.schema_id == value_id
        assert record.key_schema_id == key_id
        assert record.value[:5] == b"\x00" + struct.pack(">I", value_id)
        assert record.key[:5] == b"\x00" + struct.pack(">I", key_id)

    client = registry_client()
    read = consume(
        topic,
        2,
        value_deserializer=AvroDeserializer(client, conf=dict(SERDE_CONF)),
        key_deserializer=AvroDeserializer(client, conf=dict(SERDE_CONF)),
    )
    assert [(r.partition, r.offset) for r in read] == [(1, 0), (1, 1)]
    assert [r.key for r in read] == keys
    assert [r.value for r in read] == values


def test_protobuf_values(registry: RegistryProducer, topics: TopicFactory) -> None:
    topic = topics.create("protobuf")
    orders = [
        {
            "id": 7,
            "lines": [{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 1}],
            "counters": {"x": 1, "y": -5},
            "card": "visa",
            "status": "SHIPPED",
            "placed_at": "2024-01-01T00:00:00.123Z",
            "notes": ["n1", "n2"],
            "blob": base64.b64encode(b"\x00\x01").decode(),
        },
        {"id": "9223372036854775807", "cash_cents": 250},
        {},
    ]
    produced = registry.produce_protobuf(topic, PROTO, "Order", orders)
    lines = registry.produce_protobuf(topic, PROTO, "Order.Line", [{"sku": "z", "quantity": 9}])
    header = registry.produce_protobuf(topic, PROTO, "kafkars.test.Header", [{"source": "h"}])

    assert [(p.partition, p.offset) for p in produced + lines + header] == [
        (0, i) for i in range(5)
    ]
    # One file, one schema, one id, whichever of its messages a record holds.
    schema_id = get_json(f"/subjects/{value_subject(topic)}/versions/latest")["id"]
    assert {p.schema_id for p in produced + lines + header} == {schema_id}
    # After the id, the message indexes: zigzag varints, count first; a lone [0] is one 0 byte.
    prefix = b"\x00" + struct.pack(">I", schema_id)
    assert produced[0].value.startswith(prefix + b"\x02\x02")  # [1]: Order
    assert lines[0].value.startswith(prefix + b"\x04\x02\x00")  # [1, 0]: Order.Line
    assert header[0].value.startswith(prefix + b"\x00")  # [0]: Header

    # No registry client: it would ask for the schema with ?format=serialized, which this
    # registry cannot answer for Protobuf; the message class alone decodes the payload.
    order_class = protobuf_class(PROTO, "Order")
    line_class = protobuf_class(PROTO, "kafkars.test.Order.Line")
    header_class = protobuf_class(PROTO, "Header")
    read = consume(topic, 5)
    ctx = SerializationContext(topic, MessageField.VALUE)
    classes = [order_class] * 3 + [line_class, header_class]
    decoded = [
        ProtobufDeserializer(cls, dict(SERDE_CONF))(r.value, ctx)
        for cls, r in zip(classes, read, strict=True)
    ]
    as_dicts = [json_format.MessageToDict(m, preserving_proto_field_name=True) for m in decoded]
    assert as_dicts == [
        {
            "id": "7",
            "lines": [{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 1}],
            "counters": {"x": "1", "y": "-5"},
            "card": "visa",
            "status": "SHIPPED",
            "placed_at": "2024-01-01T00:00:00.123Z",
            "notes": ["n1", "n2"],
            "blob": "AAE=",
        },
        {"id": "9223372036854775807", "cash_cents": 250},
        {},
        {"sku": "z", "quantity": 9},
        {"source": "h"},
    ]
    first = decoded[0]
    assert first.WhichOneof("payment") == "card"
    assert first.placed_at.seconds == BASE_TIMESTAMP_MS // 1000
    assert first.placed_at.nanos == 123_000_000
    assert first.blob == b"\x00\x01"
    assert decoded[1].WhichOneof("payment") == "cash_cents"
    assert decoded[1].id == 2**63 - 1

    # This registry hands Protobuf schemas out as a base64 FileDescriptorProto (Confluent's
    # answers with .proto text).
    answer = get_json(f"/schemas/ids/{schema_id}")
    assert answer["schemaType"] == "PROTOBUF"
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(answer["schema"]))
    assert file.package == "kafkars.test"
    assert [m.name for m in file.message_type] == ["Header", "Order"]
    assert list(file.dependency) == ["google/protobuf/timestamp.proto"]
    # The well-known import is not registered as a reference.
    assert answer.get("references", []) == []


def test_json_schema_values(registry: RegistryProducer, topics: TopicFactory) -> None:
    topic = topics.create("json")
    events = [
        {"id": 1, "name": "a", "score": 1.5, "labels": ["x"], "meta": {"a": True}},
        {"id": 2, "name": "b", "score": None},
        {"id": 3, "name": "ü"},
    ]
    produced = registry.produce_json(topic, JSON_SCHEMA, events, keys=[b"k1", "k2", None])
    schema_id = get_json(f"/subjects/{value_subject(topic)}/versions/latest")["id"]
    assert [(p.offset, p.schema_id, p.key) for p in produced] == [
        (0, schema_id, b"k1"),
        (1, schema_id, b"k2"),
        (2, schema_id, None),
    ]
    # The payload after the 5-byte prefix is the JSON text.
    assert json.loads(produced[2].value[5:]) == events[2]

    # A fresh client: the deserializer fetches the writer's schema from the registry by id.
    deserializer = JSONDeserializer(
        None, schema_registry_client=registry_client(), conf=dict(SERDE_CONF)
    )
    read = consume(topic, 3, value_deserializer=deserializer)
    assert [r.value for r in read] == events
    assert [r.key for r in read] == [b"k1", b"k2", None]

    answer = get_json(f"/schemas/ids/{schema_id}")
    assert answer["schemaType"] == "JSON"
    assert json.loads(answer["schema"]) == json.loads(JSON_SCHEMA)


def test_avro_schema_evolution(registry: RegistryProducer, topics: TopicFactory) -> None:
    topic = topics.create("evolution")
    subject = value_subject(topic)
    v1 = json.dumps(
        {"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}]}
    )
    v2 = json.dumps(
        {
            "type": "record",
            "name": "User",
            "fields": [
                {"name": "name", "type": "string"},
                {"name": "age", "type": "int", "default": -1},
            ],
        }
    )
    old = registry.produce_avro(topic, v1, [{"name": "ann"}])
    id1 = old[0].schema_id
    id2 = registry.register(subject, v2)
    assert id2 != id1
    # Registering again is a no-op that answers the same id.
    assert registry.register(subject, v2) == id2
    assert registry.latest_id(subject) == id2
    new = registry.produce_avro(topic, v2, [{"name": "bob", "age": 42}])
    # A producer still on v1 keeps writing v1's id.
    older = registry.produce_avro(topic, v1, [{"name": "cid"}])
    assert [r.schema_id for r in old + new + older] == [id1, id2, id1]
    assert [r.offset for r in old + new + older] == [0, 1, 2]

    assert get_json(f"/subjects/{subject}/versions") == [1, 2]
    latest = get_json(f"/subjects/{subject}/versions/latest")
    assert (latest["subject"], latest["version"], latest["id"]) == (subject, 2, id2)
    assert json.loads(latest["schema"]) == json.loads(v2)
    assert json.loads(get_json(f"/schemas/ids/{id1}")["schema"]) == json.loads(v1)

    # Each record decodes with its writer's schema; with v2 as the reader's schema, v1 records
    # get the default.
    client = registry_client()
    as_written = consume(topic, 3, AvroDeserializer(client, conf=dict(SERDE_CONF)))
    assert [r.value for r in as_written] == [
        {"name": "ann"},
        {"name": "bob", "age": 42},
        {"name": "cid"},
    ]
    as_v2 = consume(topic, 3, AvroDeserializer(client, v2, conf=dict(SERDE_CONF)))
    assert [r.value["age"] for r in as_v2] == [-1, 42, -1]


def test_same_schema_two_subjects_one_id(registry: RegistryProducer, topics: TopicFactory) -> None:
    first, second = topics.create("same-a"), topics.create("same-b")
    schema = json.dumps(
        {"type": "record", "name": "Same", "fields": [{"name": "x", "type": "int"}]}
    )
    [a] = registry.produce_avro(first, schema, [{"x": 1}])
    [b] = registry.produce_avro(second, schema, [{"x": 2}])
    assert a.schema_id == b.schema_id
    assert framed_schema_id(b.value) == a.schema_id


def test_raw_records_among_framed(registry: RegistryProducer, topics: TopicFactory) -> None:
    topic = topics.create("raw", partitions=3)
    schema = json.dumps("string")
    framed = registry.produce_avro(topic, schema, ["first"], partition=2)
    raw = registry.produce_raw(
        topic,
        [b"not framed", b"\x00\x00", b"", None, "text"],
        partition=2,
        keys=["k", None, b"", None, None],
    )
    framed_again = registry.produce_avro(topic, schema, ["last"], partition=2)

    assert [(p.partition, p.offset) for p in framed + raw + framed_again] == [
        (2, i) for i in range(7)
    ]
    assert {p.schema_id for p in raw} == {None}
    assert framed[0].schema_id == framed_again[0].schema_id is not None
    # The registry normalizes schema text: {"type": "string"} and "string" come back as "string".
    answer = get_json(f"/schemas/ids/{framed[0].schema_id}")
    assert json.loads(answer["schema"]) == "string"

    read = consume(topic, 7)
    assert [r.value for r in read] == [p.value for p in framed + raw + framed_again]
    assert [r.value for r in read[1:6]] == [b"not framed", b"\x00\x00", b"", None, b"text"]
    assert [r.key for r in read[1:6]] == [b"k", None, b"", None, None]
    with pytest.raises(ValueError, match="not a Schema-Registry-framed record"):
        framed_schema_id(read[1].value)


def test_protoc_errors_are_reported() -> None:
    with pytest.raises(ValueError, match="protoc rejects"):
        protobuf_class('syntax = "proto3"; message Broken { int32 = 1; }', "Broken")


def test_unreachable_registry_fails_clearly() -> None:
    with pytest.raises(RegistryUnavailable, match="make registry-up"):
        check_registry("http://127.0.0.1:9/apis/ccompat/v7", timeout=2)
