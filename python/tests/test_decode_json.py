"""JSON payloads decoded into typed columns: with a registry JSON Schema (framed by
confluent-kafka's JSONSerializer), with an inline JSON Schema, and inferred from a sample."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb
import pytest

import kafkars
from testkit.kafka import BROKERS
from testkit.registry import RegistryProducer

PERSON = json.dumps(
    {
        "type": "object",
        "title": "Person",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number"},
            "born": {"type": "string", "format": "date"},
            "seen": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            },
        },
        "required": ["name"],
    }
)

PEOPLE = [
    {
        "name": "ann",
        "age": 41,
        "score": 9.5,
        "born": "1983-05-01",
        "seen": "2024-01-01T10:00:00Z",
        "tags": ["a", "b"],
        "address": {"city": "Gent", "zip": "9000"},
    },
    {"name": "bob"},
]


def manager_values(topic: str, **options: Any) -> list[Any]:
    with kafkars.ConsumerManager(
        {"bootstrap.servers": BROKERS}, [kafkars.SourceTopic.from_earliest(topic)], **options
    ) as manager:
        values: list[Any] = []
        while not manager.is_live():
            batch = manager.poll(timeout_ms=1000)
            values.extend(batch.column("value").to_pylist())
        return values


# A registry JSON Schema gives the type: every field, NULL where absent, in SQL and Python.
def test_json_schema_from_registry(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("people")
    registry.produce_json(topic, PERSON, PEOPLE)
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        f"SELECT value FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'json', schema_registry := '{registry.url}')"
    ).fetchall()
    first, second = rows[0][0], rows[1][0]
    assert first["name"] == "ann"
    assert first["age"] == 41
    assert first["score"] == 9.5
    assert first["born"] == dt.date(1983, 5, 1)
    assert first["seen"] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc)
    assert first["tags"] == ["a", "b"]
    assert first["address"] == {"city": "Gent", "zip": "9000"}
    assert second == {
        "name": "bob",
        "age": None,
        "score": None,
        "born": None,
        "seen": None,
        "tags": None,
        "address": None,
    }
    values = manager_values(topic, value_format="json", schema_registry=registry.url)
    assert [v["name"] for v in values] == ["ann", "bob"]
    assert values[0]["born"] == dt.date(1983, 5, 1)


# The same schema given inline reads the same framed records.
def test_json_inline_schema(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("inline")
    registry.produce_json(topic, PERSON, PEOPLE)
    rows = con.execute(
        f"SELECT value.name, value.age FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        f"value_format := 'json', value_schema := $${PERSON}$$)"
    ).fetchall()
    assert rows == [("ann", 41), ("bob", None)]


# Without a schema the type is inferred from the first messages; a later record that does
# not fit fails the scan (naming where), or is NULL with on_error := 'null'.
def test_json_inferred_and_misfit(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("plain")
    docs = [{"id": i, "name": f"n{i}", "nested": {"x": i * 1.5}} for i in range(5)]
    docs.append({"id": "six", "name": "n6", "nested": {"x": 9}})
    registry.produce_raw(topic, [json.dumps(doc) for doc in docs])

    with pytest.raises(duckdb.Error, match=rf"topic '{topic}' partition 0 offset 5"):
        con.execute(
            f"SELECT value FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
            "value_format := 'json', json_sample_size := 5)"
        ).fetchall()
    rows = con.execute(
        f"SELECT value, decode_error FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        "value_format := 'json', json_sample_size := 5, on_error := 'null')"
    ).fetchall()
    assert [row[0] for row in rows[:5]] == docs[:5]
    assert rows[5][0] is None
    assert "does not fit the type inferred from the first 5 messages" in rows[5][1]

    # Sampled over all six, id holds both a number and a string: it becomes JSON text.
    described = {
        row[0]: row[1]
        for row in con.execute(
            f"DESCRIBE SELECT unnest(value) FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
            "value_format := 'json')"
        ).fetchall()
    }
    assert described["name"] == "VARCHAR"

    with pytest.raises(kafkars.DecodeError, match=rf"topic '{topic}' partition 0 offset 5"):
        manager_values(topic, value_format="json", json_sample_size=5)
    values = manager_values(topic, value_format="json", json_sample_size=5, on_error="null")
    assert values[:5] == docs[:5]
    assert values[5] is None


# Keys as JSON and values as JSON at once; a schema-less empty topic can't be inferred.
def test_json_keys_values_and_empty_topic(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("kv")
    registry.produce_raw(topic, ['{"v": 1}'], keys=['{"k": "a"}'])
    rows = con.execute(
        f"SELECT key.k, value.v FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
        "key_format := 'json', value_format := 'json')"
    ).fetchall()
    assert rows == [("a", 1)]
    empty = topics.create("empty")
    with pytest.raises(duckdb.Error, match="no JSON messages were found"):
        con.execute(
            f"SELECT * FROM kafka_scan('{empty}', brokers := '{BROKERS}', value_format := 'json')"
        ).fetchall()
