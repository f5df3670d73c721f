"""Avro payloads decoded into typed columns, against the real broker and Schema Registry.

Test data is written by confluent-kafka's AvroSerializer, so the wire format is Confluent's.
Every test reads through both front ends: SQL (kafka_scan) and ConsumerManager.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

import kafkars
from testkit.kafka import BROKERS
from testkit.registry import RegistryProducer, value_subject

UTC = dt.timezone.utc

EVERYTHING = json.dumps(
    {
        "type": "record",
        "name": "Everything",
        "namespace": "kafkars.test",
        "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "small", "type": "int"},
            {"name": "big", "type": "long"},
            {"name": "ratio", "type": "float"},
            {"name": "precise", "type": "double"},
            {"name": "raw", "type": "bytes"},
            {"name": "text", "type": "string"},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 4}},
            {
                "name": "colour",
                "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"]},
            },
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {
                "name": "lines",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Line",
                        "fields": [
                            {"name": "sku", "type": "string"},
                            {"name": "qty", "type": ["null", "int"], "default": None},
                        ],
                    },
                },
            },
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "maybe_first", "type": ["null", "string"], "default": None},
            {"name": "maybe_last", "type": ["long", "null"]},
            {"name": "either", "type": ["int", "string"]},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
            },
            {
                "name": "fixed_amount",
                "type": {
                    "type": "fixed",
                    "name": "Money",
                    "size": 8,
                    "logicalType": "decimal",
                    "precision": 18,
                    "scale": 4,
                },
            },
            {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
            {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {
                "name": "local_ms",
                "type": {"type": "long", "logicalType": "local-timestamp-millis"},
            },
            {
                "name": "local_us",
                "type": {"type": "long", "logicalType": "local-timestamp-micros"},
            },
            {
                "name": "address",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Address",
                        "fields": [
                            {"name": "city", "type": "string"},
                            {"name": "zip", "type": ["null", "string"], "default": None},
                        ],
                    },
                ],
                "default": None,
            },
        ],
    }
)


def everything(n: int) -> dict[str, Any]:
    """A record of the EVERYTHING schema; odd n puts NULL in every nullable position."""
    odd = n % 2 == 1
    return {
        "flag": odd,
        "small": -(2**31) if n == 0 else n,
        "big": 2**62 + n,
        "ratio": 1.5 + n,
        "precise": 0.1 * n,
        "raw": bytes([n, 0, 255]),
        "text": f"héllo {n}",
        "hash": bytes([1, 2, 3, n]),
        "colour": ["RED", "GREEN", "BLUE"][n % 3],
        "tags": [f"t{i}" for i in range(n)],
        "lines": [{"sku": f"s{i}", "qty": None if odd else i} for i in range(n + 1)],
        "counts": {f"k{i}": i * 10 for i in range(n)},
        "maybe_first": None if odd else f"first {n}",
        "maybe_last": None if odd else n * 7,
        "either": n if n % 2 == 0 else f"s{n}",
        "amount": Decimal(f"{12345 + n}.67"),
        "fixed_amount": Decimal(f"-{n}.0001"),
        "id": uuid.UUID(int=n + 1),
        "day": dt.date(2024, 2, 29) + dt.timedelta(days=n),
        "t_ms": dt.time(13, 14, 15, 123000),
        "t_us": dt.time(23, 59, 59, 999999),
        "ts_ms": dt.datetime(2024, 1, 1, 0, 0, n, 250000, tzinfo=UTC),
        "ts_us": dt.datetime(2024, 1, 1, 0, 0, n, 123456, tzinfo=UTC),
        "local_ms": dt.datetime(2024, 6, 1, 12, 0, n, 500000),
        "local_us": dt.datetime(2024, 6, 1, 12, 0, n, 654321),
        "address": None if odd else {"city": f"City {n}", "zip": None if n == 2 else "12345"},
    }


def expected_sql(record: dict[str, Any]) -> dict[str, Any]:
    """A record as DuckDB returns it: maps as dicts of key/value, times without tz."""
    out = dict(record)
    out["counts"] = dict(record["counts"])
    return out


def scan_values(con, topic: str, registry: str, **extra: str) -> list[Any]:
    arguments = "".join(f", {name} := '{value}'" for name, value in extra.items())
    rows = con.execute(
        f"SELECT value FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'avro', schema_registry := '{registry}'{arguments}) "
        'ORDER BY "offset"'
    ).fetchall()
    return [row[0] for row in rows]


def manager_batches(topic: str, **options: Any) -> pa.Table:
    with kafkars.ConsumerManager(
        {"bootstrap.servers": BROKERS},
        [kafkars.SourceTopic.from_earliest(topic)],
        **options,
    ) as manager:
        batches = []
        while not manager.is_live():
            batch = manager.poll(timeout_ms=1000)
            if batch.num_rows:
                batches.append(batch)
        return pa.Table.from_batches(batches) if batches else pa.table({})


# Every Avro type and logical type, NULL in every nullable position, compared value by value.
def test_avro_every_type_sql_and_manager(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("avro-all")
    records = [everything(n) for n in range(4)]
    registry.produce_avro(topic, EVERYTHING, records)

    con.execute("SET TimeZone = 'UTC'")
    got = scan_values(con, topic, registry.url)
    assert len(got) == len(records)
    for row, record in zip(got, records, strict=True):
        for name, value in expected_sql(record).items():
            actual = row[name]
            if name == "ts_ms" or name == "ts_us":
                assert actual == value, name
            elif name == "ratio":
                assert actual == pytest.approx(value), name
            else:
                assert actual == value, (name, actual, value)

    table = manager_batches(topic, value_format="avro", schema_registry=registry.url)
    values = table.column("value").to_pylist()
    assert len(values) == len(records)
    for row, record in zip(values, records, strict=True):
        assert row["big"] == record["big"]
        assert row["text"] == record["text"]
        assert row["colour"] == record["colour"]
        assert row["lines"] == record["lines"]
        assert dict(row["counts"]) == record["counts"]
        assert row["maybe_first"] == record["maybe_first"]
        assert row["amount"] == record["amount"]
        assert row["day"] == record["day"]
        assert row["ts_ms"] == record["ts_ms"]
        assert row["local_us"] == record["local_us"]
        assert row["address"] == record["address"]


# The column types DuckDB shows are the natural ones for each Avro type.
def test_avro_column_types(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("avro-types")
    registry.produce_avro(topic, EVERYTHING, [everything(0)])
    described = con.execute(
        f"DESCRIBE SELECT unnest(value) FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'avro', schema_registry := '{registry.url}')"
    ).fetchall()
    types = {row[0]: row[1] for row in described}
    assert types["flag"] == "BOOLEAN"
    assert types["small"] == "INTEGER"
    assert types["big"] == "BIGINT"
    assert types["ratio"] == "FLOAT"
    assert types["precise"] == "DOUBLE"
    assert types["raw"] == "BLOB"
    assert types["text"] == "VARCHAR"
    assert types["hash"] == "BLOB"
    assert types["tags"] == "VARCHAR[]"
    assert types["counts"] == "MAP(VARCHAR, BIGINT)"
    assert types["amount"] == "DECIMAL(10,2)"
    assert types["fixed_amount"] == "DECIMAL(18,4)"
    assert types["id"] == "UUID"
    assert types["day"] == "DATE"
    assert types["t_ms"] == "TIME"
    assert types["ts_ms"] == "TIMESTAMP WITH TIME ZONE"
    assert types["local_ms"] == "TIMESTAMP"
    assert types["either"].startswith("UNION(")


# The README's query: fields of a decoded value in SQL, aggregated.
def test_avro_group_by_fields(con, topics, registry: RegistryProducer) -> None:
    schema = json.dumps(
        {
            "type": "record",
            "name": "Order",
            "fields": [
                {"name": "user", "type": "string"},
                {
                    "name": "amount",
                    "type": {
                        "type": "bytes",
                        "logicalType": "decimal",
                        "precision": 12,
                        "scale": 2,
                    },
                },
            ],
        }
    )
    topic = topics.create("orders", partitions=2)
    orders = [{"user": f"u{i % 3}", "amount": Decimal(f"{i}.25")} for i in range(30)]
    registry.produce_avro(topic, schema, orders[:15], partition=0)
    registry.produce_avro(topic, schema, orders[15:], partition=1)
    got = con.execute(
        f"SELECT value.user, sum(value.amount) FROM kafka_scan('{topic}', "
        f"brokers := '{BROKERS}', value_format := 'avro', "
        f"schema_registry := '{registry.url}') GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    expected: dict[str, Decimal] = {}
    for order in orders:
        expected[order["user"]] = expected.get(order["user"], Decimal(0)) + order["amount"]
    assert got == sorted(expected.items())


V1 = json.dumps(
    {
        "type": "record",
        "name": "User",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "nickname", "type": "string"},
        ],
    }
)
V2 = json.dumps(
    {
        "type": "record",
        "name": "User",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "country", "type": "string", "default": "NL"},
        ],
    }
)


# Schema evolution: v1 and v2 records read with the latest (v2) schema, and with v1 by id.
def test_avro_schema_evolution(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("evolve")
    v1 = registry.produce_avro(topic, V1, [{"id": 1, "nickname": "ann"}])
    v2 = registry.produce_avro(topic, V2, [{"id": 2, "country": "BE"}])
    assert v1[0].schema_id != v2[0].schema_id
    assert registry.latest_id(value_subject(topic)) == v2[0].schema_id

    latest = scan_values(con, topic, registry.url)
    assert latest == [{"id": 1, "country": "NL"}, {"id": 2, "country": "BE"}]

    older = con.execute(
        f"SELECT value FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'avro', schema_registry := '{registry.url}', "
        f"value_schema_id := {v1[0].schema_id}, on_error := 'null') ORDER BY \"offset\""
    ).fetchall()
    # v2 records lack v1's nickname and it has no default: they can't be resolved to v1.
    assert older[0][0] == {"id": 1, "nickname": "ann"}
    assert older[1][0] is None

    table = manager_batches(topic, value_format="avro", schema_registry=registry.url)
    assert table.column("value").to_pylist() == latest


# Keys and values decoded at once; a null key and a tombstone stay NULL.
def test_avro_keys_and_values(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("kv")
    registry.produce_avro(
        topic,
        V1,
        [{"id": 1, "nickname": "a"}, None],
        keys=["k1", "k2"],
        key_schema='"string"',
    )
    rows = con.execute(
        f"SELECT key, value FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"key_format := 'avro', value_format := 'avro', schema_registry := '{registry.url}') "
        'ORDER BY "offset"'
    ).fetchall()
    assert rows == [("k1", {"id": 1, "nickname": "a"}), ("k2", None)]
    table = manager_batches(
        topic, key_format="avro", value_format="avro", schema_registry=registry.url
    )
    assert table.column("key").to_pylist() == ["k1", "k2"]
    assert table.schema.field("key").type == pa.string()


# Records that aren't Confluent-framed: 'fail' names topic, partition, offset; 'null' keeps
# the rows and says why in decode_error.
def test_avro_on_error(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("mixed")
    registry.produce_avro(topic, V1, [{"id": 1, "nickname": "a"}])
    registry.produce_raw(topic, [b"not avro"])
    registry.produce_avro(topic, V1, [{"id": 3, "nickname": "c"}])

    with pytest.raises(duckdb_error(), match=rf"topic '{topic}' partition 0 offset 1"):
        scan_values(con, topic, registry.url)

    rows = con.execute(
        f"SELECT \"offset\", value, decode_error FROM kafka_scan('{topic}', "
        f"brokers := '{BROKERS}', value_format := 'avro', schema_registry := '{registry.url}', "
        "on_error := 'null') ORDER BY \"offset\""
    ).fetchall()
    assert [row[:2] for row in rows] == [
        (0, {"id": 1, "nickname": "a"}),
        (1, None),
        (2, {"id": 3, "nickname": "c"}),
    ]
    assert rows[0][2] is None
    assert rows[2][2] is None
    assert "not in the Confluent wire format" in rows[1][2]

    with pytest.raises(kafkars.DecodeError, match=rf"topic '{topic}' partition 0 offset 1"):
        manager_batches(topic, value_format="avro", schema_registry=registry.url)
    table = manager_batches(
        topic, value_format="avro", schema_registry=registry.url, on_error="null"
    )
    assert table.column("value").to_pylist() == [
        {"id": 1, "nickname": "a"},
        None,
        {"id": 3, "nickname": "c"},
    ]
    assert table.column("decode_error").null_count == 2


# An inline schema instead of a registry reads the same framed records.
def test_avro_inline_schema(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("inline")
    registry.produce_avro(topic, V1, [{"id": 5, "nickname": "e"}])
    rows = con.execute(
        f"SELECT value.nickname FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'avro', value_schema := $${V1}$$)"
    ).fetchall()
    assert rows == [("e",)]


# count(*) decodes nothing: a topic of garbage still counts with on_error := 'fail'.
def test_avro_count_decodes_nothing(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("garbage")
    registry.produce_avro(topic, V1, [{"id": 1, "nickname": "a"}])
    registry.produce_raw(topic, [b"x", b"y"])
    count = con.execute(
        f"SELECT count(*) FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'avro', schema_registry := '{registry.url}')"
    ).fetchone()
    assert count == (3,)


def duckdb_error() -> type[Exception]:
    import duckdb

    return duckdb.Error


# ordered := false: every DuckDB thread decodes with its own fork of the scan's decoders,
# into the same type; every record once, with old and new writer schemas mixed.
def test_avro_unordered_threads(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("parallel", partitions=4)
    for partition in range(4):
        schema = V1 if partition % 2 == 0 else V2
        values = [
            {"id": partition * 1000 + i, "nickname": "n"}
            if schema == V1
            else {"id": partition * 1000 + i, "country": "BE"}
            for i in range(500)
        ]
        registry.produce_avro(topic, schema, values, partition=partition)
    con.execute("SET threads = 4")
    rows = con.execute(
        f"SELECT value.id, value.country FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'avro', schema_registry := '{registry.url}', ordered := false)"
    ).fetchall()
    assert sorted(row[0] for row in rows) == [p * 1000 + i for p in range(4) for i in range(500)]
    countries = {row[0] // 1000: row[1] for row in rows}
    assert countries == {0: "NL", 1: "BE", 2: "NL", 3: "BE"}
