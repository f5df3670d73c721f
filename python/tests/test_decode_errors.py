"""Bad decoding input: each gets a clear error naming the parameter or the thing, in SQL and in
Python, never a hang past the timeout, and the database stays usable."""

from __future__ import annotations

import json
import socket
import time

import duckdb
import pytest

import kafkars
from testkit.kafka import BROKERS
from testkit.registry import RegistryProducer, RegistryProxy

RECORD = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]})


def scan(con, topic: str, arguments: str) -> list[tuple]:
    return con.execute(
        f"SELECT value FROM kafka_scan('{topic}', brokers := '{BROKERS}', {arguments})"
    ).fetchall()


def manager(topic: str, **options) -> kafkars.ConsumerManager:
    return kafkars.ConsumerManager(
        {"bootstrap.servers": BROKERS}, [kafkars.SourceTopic.from_earliest(topic)], **options
    )


BIND_ERRORS = [
    (
        "value_format := 'xml'",
        {"value_format": "xml"},
        "invalid value_format: expected one of 'bytes', 'avro', 'protobuf', 'json', found 'xml'",
    ),
    (
        "key_format := 'avro'",
        {"key_format": "avro"},
        "invalid key_format: 'avro' needs a schema: give schema_registry or key_schema",
    ),
    (
        "value_format := 'avro', value_schema := '{\"type\": \"record\"'",
        {"value_format": "avro", "value_schema": '{"type": "record"'},
        "value_schema: not valid Avro schema JSON",
    ),
    (
        "value_format := 'avro', value_schema := '\"long\"', "
        "schema_registry := 'http://127.0.0.1:1'",
        {"value_format": "avro", "value_schema": '"long"', "schema_registry": "http://127.0.0.1:1"},
        "invalid value_schema: give either an inline schema or schema_registry, not both",
    ),
    (
        "value_schema := '\"long\"'",
        {"value_schema": '"long"'},
        "invalid value_schema: value_format is 'bytes', which takes no schema",
    ),
    (
        "value_format := 'avro', value_schema := '\"long\"', on_error := 'skip'",
        {"value_format": "avro", "value_schema": '"long"', "on_error": "skip"},
        "invalid on_error: expected one of 'fail', 'null', found 'skip'",
    ),
    (
        "value_format := 'avro', schema_registry := 'http://127.0.0.1:1', value_schema_id := -4",
        {"value_format": "avro", "schema_registry": "http://127.0.0.1:1", "value_schema_id": -4},
        "invalid value_schema_id: expected a registry schema id from 0 to 4294967295, found -4",
    ),
    (
        "value_format := 'avro', schema_registry := 'registry:8081'",
        {"value_format": "avro", "schema_registry": "registry:8081"},
        "invalid schema_registry: expected a URL such as http://host:8081",
    ),
    (
        "value_format := 'avro', schema_registry := 'http://127.0.0.1:1', "
        "schema_registry_config := MAP {'colour': 'red'}",
        {
            "value_format": "avro",
            "schema_registry": "http://127.0.0.1:1",
            "schema_registry_config": {"colour": "red"},
        },
        "invalid schema_registry_config: unknown key 'colour'",
    ),
    (
        "value_format := 'json', json_sample_size := 0",
        {"value_format": "json", "json_sample_size": 0},
        "invalid json_sample_size",
    ),
]


# Every bad combination fails at bind in SQL (and at construction in Python) with its text,
# and the connection keeps working.
@pytest.mark.parametrize(("sql", "options", "message"), BIND_ERRORS)
def test_decode_bad_parameters(con, topics, sql: str, options: dict, message: str) -> None:
    topic = topics.create("bad")
    with pytest.raises(duckdb.Error) as caught:
        scan(con, topic, sql)
    assert message in str(caught.value), str(caught.value)
    assert con.execute("SELECT 42").fetchone() == (42,)
    with pytest.raises((ValueError, kafkars.KafkarsError)) as raised:
        manager(topic, **options)
    assert message in str(raised.value), str(raised.value)


# A registry nobody listens on fails at once, naming its URL.
def test_decode_registry_refused(con, topics) -> None:
    topic = topics.create("down")
    with pytest.raises(duckdb.Error) as caught:
        scan(con, topic, "value_format := 'avro', schema_registry := 'http://127.0.0.1:1'")
    assert "Schema Registry http://127.0.0.1:1: could not connect" in str(caught.value)
    with pytest.raises(kafkars.SchemaRegistryError, match=r"Schema Registry http://127\.0\.0\.1:1"):
        manager(topic, value_format="avro", schema_registry="http://127.0.0.1:1")


# A registry that accepts connections but never answers fails within `timeout`, naming it.
def test_decode_registry_silent_within_timeout(con, topics) -> None:
    topic = topics.create("silent")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(duckdb.Error) as caught:
            scan(
                con,
                topic,
                f"value_format := 'avro', schema_registry := '{url}', "
                "timeout := INTERVAL '2 seconds'",
            )
        elapsed = time.monotonic() - started
    assert f"Schema Registry {url}: no answer within 2s" in str(caught.value)
    assert elapsed < 10, elapsed


# A topic whose subject the registry does not have: the error names the subject.
def test_decode_subject_missing(con, topics, schema_registry: str) -> None:
    topic = topics.create("nosubject")
    with pytest.raises(duckdb.Error) as caught:
        scan(con, topic, f"value_format := 'avro', schema_registry := '{schema_registry}'")
    assert f"subject '{topic}-value' not found" in str(caught.value)
    with pytest.raises(kafkars.SchemaRegistryError, match=f"subject '{topic}-value' not found"):
        manager(topic, value_format="avro", schema_registry=schema_registry)


# A wrong basic-auth password is refused with a clear error that never shows the password;
# the right one reads.
def test_decode_basic_auth(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("auth")
    registry.produce_avro(topic, RECORD, [{"a": 7}])
    with RegistryProxy("alice", "right-horse") as guarded:
        for config in ("'alice:wrong-battery'", None):
            extra = (
                f", schema_registry_config := MAP {{'basic.auth.user.info': {config}}}"
                if config
                else ""
            )
            with pytest.raises(duckdb.Error) as caught:
                scan(
                    con, topic, f"value_format := 'avro', schema_registry := '{guarded.url}'{extra}"
                )
            text = str(caught.value)
            assert "HTTP 401: not authorized" in text, text
            assert "wrong-battery" not in text
            assert "right-horse" not in text
        rows = scan(
            con,
            topic,
            f"value_format := 'avro', schema_registry := '{guarded.url}', "
            "schema_registry_config := MAP {'basic.auth.user.info': 'alice:right-horse'}",
        )
        assert rows == [({"a": 7},)]
        with pytest.raises(kafkars.SchemaRegistryError) as raised:
            manager(
                topic,
                value_format="avro",
                schema_registry=guarded.url,
                schema_registry_config={"basic.auth.user.info": "alice:wrong-battery"},
            )
        assert "wrong-battery" not in str(raised.value)
        with manager(
            topic,
            value_format="avro",
            schema_registry=guarded.url.replace("http://", "http://alice:right-horse@"),
        ) as reader:
            assert reader.poll(5000).column("value").to_pylist() == [{"a": 7}]


# A subject that holds another format's schema is named as such.
def test_decode_wrong_format_for_subject(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("wrongformat")
    registry.produce_avro(topic, RECORD, [{"a": 1}])
    with pytest.raises(duckdb.Error) as caught:
        scan(con, topic, f"value_format := 'protobuf', schema_registry := '{registry.url}'")
    text = str(caught.value)
    assert f"{topic}-value" in text or "schema id" in text, text
    assert "avro" in text.lower(), text


# Topics whose latest schemas differ can't share one value column: the error says what to do.
def test_decode_topics_with_different_schemas(con, topics, registry: RegistryProducer) -> None:
    first = topics.create("first")
    second = topics.create("second")
    registry.produce_avro(first, RECORD, [{"a": 1}])
    other = json.dumps({"type": "record", "name": "S", "fields": [{"name": "b", "type": "string"}]})
    registry.produce_avro(second, other, [{"b": "x"}])
    with pytest.raises(duckdb.Error) as caught:
        con.execute(
            f"SELECT value FROM kafka_scan('{first},{second}', brokers := '{BROKERS}', "
            f"value_format := 'avro', schema_registry := '{registry.url}')"
        ).fetchall()
    text = str(caught.value)
    assert "UNION ALL BY NAME" in text, text
    assert f"'{first}-value'" in text, text


# A recursive record has no column type: a bind error naming the field.
def test_decode_recursive_schema(con, topics) -> None:
    topic = topics.create("tree")
    node = json.dumps(
        {
            "type": "record",
            "name": "Node",
            "fields": [
                {"name": "label", "type": "string"},
                {"name": "children", "type": {"type": "array", "items": "Node"}},
            ],
        }
    )
    with pytest.raises(duckdb.BinderException, match=r"value\.children refers back to record"):
        scan(con, topic, f"value_format := 'avro', value_schema := $${node}$$")


# Schemas are fetched once per id per scan, never once per record: 500 records written with
# two schema versions cost a handful of registry requests.
def test_decode_schema_fetched_once_per_id(con, topics, registry: RegistryProducer) -> None:
    topic = topics.create("cached", partitions=2)
    v2 = json.dumps(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "a", "type": "long"},
                {"name": "b", "type": "string", "default": "-"},
            ],
        }
    )
    registry.produce_avro(topic, RECORD, [{"a": i} for i in range(250)], partition=0)
    registry.produce_avro(topic, v2, [{"a": i, "b": "x"} for i in range(250)], partition=1)
    with RegistryProxy() as proxy:
        count = con.execute(
            f"SELECT count(value.b) FROM kafka_scan('{topic}', brokers := '{BROKERS}', "
            f"value_format := 'avro', schema_registry := '{proxy.url}')"
        ).fetchone()
        assert count == (500,)
        # The latest version of the subject, then each writer id not yet known, once.
        assert len(proxy.requests) <= 3, proxy.requests
        assert len(set(proxy.requests)) == len(proxy.requests), proxy.requests
