"""A real Schema Registry for tests: finding it, and writing Schema-Registry-framed records.

The registry is the local one ``registry/registry.sh up`` (``make registry-up``) starts. The
records are written by confluent-kafka's own serializers (``AvroSerializer``,
``ProtobufSerializer``, ``JSONSerializer``), not by kafkars, so the tests compare kafkars with
what the reference client produces: the Confluent wire format (magic byte 0, the 4-byte schema
id, for Protobuf the message-index list, then the payload), with schemas registered under the
topic's ``<topic>-value`` / ``<topic>-key`` subjects.

Two settings matter against this registry (Apicurio): every serializer uses the ``TOPIC``
subject name strategy, and the client a timeout. confluent-kafka's default strategy first asks
the registry's ``/associations`` endpoint, which Apicurio answers with 404 and, now and then,
not at all on a kept-alive connection; without a timeout the producer then waits for ever.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message as ProtobufMessage

from testkit.kafka import BROKERS

#: The Confluent-compatible API of the test registry (``make registry-up`` starts one there).
REGISTRY_URL = os.environ.get(
    "KAFKARS_SCHEMA_REGISTRY", "http://127.0.0.1:18081/apis/ccompat/v7"
).rstrip("/")

#: Serializer (and deserializer) settings every helper uses: subjects are ``<topic>-value`` and
#: ``<topic>-key``, and no ``/associations`` lookup happens (see the module's docstring).
SERDE_CONF: Mapping[str, Any] = {"subject.name.strategy.type": "TOPIC"}

#: The byte that starts every Schema-Registry-framed record.
MAGIC_BYTE = 0


class RegistryUnavailable(RuntimeError):
    """Raised when no Schema Registry answers at :data:`REGISTRY_URL`."""


@dataclass(frozen=True)
class Produced:
    """One record as written: where it landed, the schema ids its framing carries (``None``
    for a part that is not framed) and its exact bytes."""

    partition: int
    offset: int
    schema_id: int | None
    key_schema_id: int | None
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Consumed:
    """One record as read back, key and value already through the given deserializers."""

    partition: int
    offset: int
    key: Any
    value: Any


def check_registry(url: str = REGISTRY_URL, timeout: float = 10.0) -> None:
    """Fail loudly unless the registry at ``url`` answers ``GET /subjects``."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as response:
            json.load(response)
    except (OSError, ValueError) as error:
        raise RegistryUnavailable(
            f"no Schema Registry answers at {url} ({error}); start one with 'make registry-up'"
        ) from error


def registry_client(url: str = REGISTRY_URL) -> SchemaRegistryClient:
    """A confluent-kafka registry client for ``url``, with a request timeout (seconds) so that
    an unanswered request fails instead of hanging the test."""
    return SchemaRegistryClient({"url": url, "timeout": 10})


def get_json(path: str, url: str = REGISTRY_URL) -> Any:
    """``GET <url><path>`` on the registry's REST API, parsed (``path`` starts with ``/``);
    an HTTP error status raises :class:`urllib.error.HTTPError`."""
    with urllib.request.urlopen(f"{url}{path}", timeout=10) as response:
        return json.load(response)


def value_subject(topic: str) -> str:
    """The subject the serializers register a topic's value schemas under."""
    return f"{topic}-value"


def key_subject(topic: str) -> str:
    """The subject the serializers register a topic's key schemas under."""
    return f"{topic}-key"


def framed_schema_id(data: bytes) -> int:
    """The schema id in the Confluent framing of ``data`` (magic byte 0, then 4 bytes big
    endian); fails on bytes that are not framed."""
    if len(data) < 5 or data[0] != MAGIC_BYTE:
        raise ValueError(f"not a Schema-Registry-framed record: {data[:8]!r}")
    return struct.unpack(">I", data[1:5])[0]


# --------------------------------------------------------------------------------------------
# Protobuf message classes from .proto text
# --------------------------------------------------------------------------------------------


@functools.cache
def compile_proto(
    proto: str, file_name: str = "kafkars_test.proto"
) -> descriptor_pool.DescriptorPool:
    """Compile ``.proto`` text with the ``protoc`` that grpcio-tools bundles and load the
    result into a descriptor pool of its own.

    Its own pool, not the process-wide default one, because tests reuse file and message names
    with different contents. The well-known types (``google/protobuf/timestamp.proto``, ...)
    may be imported. The same text gives the same pool (cached), so its classes stay equal
    across calls: ``ProtobufSerializer`` checks the type of every message it is given.
    """
    include = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="kafkars-proto-") as tmp:
        (Path(tmp) / file_name).write_text(proto)
        descriptor_set = Path(tmp) / "descriptor_set.pb"
        # A child process: protoc reports syntax errors on its own stderr, which is captured
        # here for the exception rather than lost.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--proto_path={tmp}",
                f"--proto_path={include}",
                "--include_imports",
                f"--descriptor_set_out={descriptor_set}",
                file_name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise ValueError(f"protoc rejects the .proto text:\n{result.stderr}{result.stdout}")
        files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    # --include_imports lists every file after the files it imports.
    for file in files.file:
        pool.Add(file)
    return pool


def protobuf_class(
    proto: str, message: str, file_name: str = "kafkars_test.proto"
) -> type[ProtobufMessage]:
    """The message class named ``message`` in the ``.proto`` text ``proto``.

    ``message`` is a full name (``pkg.Outer.Inner``) or one relative to the file's package
    (``Outer.Inner``); any message of the file may be chosen, not only the first.
    """
    pool = compile_proto(proto, file_name)
    package = pool.FindFileByName(file_name).package
    try:
        descriptor = pool.FindMessageTypeByName(message)
    except KeyError:
        if not package:
            raise
        descriptor = pool.FindMessageTypeByName(f"{package}.{message}")
    return message_factory.GetMessageClass(descriptor)


def protobuf_message(
    message_class: type[ProtobufMessage], value: Mapping[str, Any] | ProtobufMessage
) -> ProtobufMessage:
    """``value`` as a ``message_class`` instance: a dict is read as Protobuf's JSON mapping
    (field names as in the .proto or in lowerCamelCase, enums by name, 64-bit integers as
    numbers or strings, ``bytes`` as base64, ``Timestamp`` as RFC 3339 text, map keys as
    strings); a message is taken as it is."""
    if isinstance(value, ProtobufMessage):
        return value
    return json_format.ParseDict(value, message_class())


# --------------------------------------------------------------------------------------------
# Producing framed records
# --------------------------------------------------------------------------------------------

#: A record's key or value as handed to a serializer (``None`` writes a null).
Serialize = Callable[[Any, SerializationContext], bytes | None]


class RegistryProducer:
    """Writes Schema-Registry-framed records with confluent-kafka's serializers.

    Every ``produce_*`` call serializes ``values`` in order (registering the schema under
    ``<topic>-value`` when it is new, as the serializers do), writes them with one idempotent
    producer to ``partition`` of ``topic`` (which must exist, e.g. from the ``topics``
    fixture), waits until all are acknowledged and returns one :class:`Produced` per record,
    in order. A ``None`` value writes a null value (a tombstone).

    Keys: with ``key_schema`` (an Avro schema) every entry of ``keys`` is Avro-serialized and
    registered under ``<topic>-key``; without it, ``keys`` are written as they are (``bytes``,
    ``str`` or ``None``). ``timestamps`` (epoch ms, one per record) default to the producer's
    clock.
    """

    def __init__(self, brokers: str = BROKERS, url: str = REGISTRY_URL) -> None:
        self.brokers = brokers
        self.url = url
        self.client = registry_client(url)

    # -- one call per format -----------------------------------------------------------------

    def produce_avro(
        self,
        topic: str,
        schema: str,
        values: Sequence[Any],
        *,
        partition: int = 0,
        keys: Sequence[Any] | None = None,
        key_schema: str | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> list[Produced]:
        """Write ``values`` (dicts for records, plain values for primitive schemas) framed
        with ``AvroSerializer`` and the Avro ``schema`` (JSON text)."""
        serializer = AvroSerializer(self.client, schema, conf=dict(SERDE_CONF))
        return self._produce(topic, serializer, values, partition, keys, key_schema, timestamps)

    def produce_protobuf(
        self,
        topic: str,
        proto: str,
        message: str,
        values: Sequence[Mapping[str, Any] | ProtobufMessage | None],
        *,
        partition: int = 0,
        keys: Sequence[Any] | None = None,
        key_schema: str | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> list[Produced]:
        """Write ``values`` as the message ``message`` of the ``.proto`` text ``proto``, framed
        with ``ProtobufSerializer`` (see :func:`protobuf_class` for the name and
        :func:`protobuf_message` for how dicts are read)."""
        message_class = protobuf_class(proto, message)
        serializer = ProtobufSerializer(message_class, self.client, conf=dict(SERDE_CONF))
        messages = [None if v is None else protobuf_message(message_class, v) for v in values]
        return self._produce(topic, serializer, messages, partition, keys, key_schema, timestamps)

    def produce_json(
        self,
        topic: str,
        schema: str,
        values: Sequence[Any],
        *,
        partition: int = 0,
        keys: Sequence[Any] | None = None,
        key_schema: str | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> list[Produced]:
        """Write ``values`` (JSON-able objects, validated against the JSON ``schema`` text)
        framed with ``JSONSerializer``."""
        serializer = JSONSerializer(schema, self.client, conf=dict(SERDE_CONF))
        return self._produce(topic, serializer, values, partition, keys, key_schema, timestamps)

    def produce_raw(
        self,
        topic: str,
        values: Sequence[bytes | str | None],
        *,
        partition: int = 0,
        keys: Sequence[Any] | None = None,
        key_schema: str | None = None,
        timestamps: Sequence[int] | None = None,
    ) -> list[Produced]:
        """Write ``values`` as they are, not framed (e.g. garbage among framed records)."""
        return self._produce(topic, None, values, partition, keys, key_schema, timestamps)

    # -- schemas -------------------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: str,
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
    ) -> int:
        """Register ``schema`` (``AVRO``, ``PROTOBUF`` or ``JSON``) as a version of ``subject``
        and return its id (the existing id when that subject already has it). For schema
        evolution: register v2 under ``value_subject(topic)``, then produce with either
        schema; the serializers reuse the ids already registered."""
        return self.client.register_schema(subject, Schema(schema, schema_type, list(references)))

    def latest_id(self, subject: str) -> int:
        """The id of the latest version of ``subject``."""
        return self.client.get_latest_version(subject).schema_id

    # -- the common part -------------------------------------------------------------------------

    def _produce(
        self,
        topic: str,
        serializer: Serialize | None,
        values: Sequence[Any],
        partition: int,
        keys: Sequence[Any] | None,
        key_schema: str | None,
        timestamps: Sequence[int] | None,
    ) -> list[Produced]:
        values = list(values)
        if keys is not None and len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        if timestamps is not None and len(timestamps) != len(values):
            raise ValueError(f"{len(timestamps)} timestamps for {len(values)} values")
        if key_schema is not None and keys is None:
            raise ValueError("key_schema without keys")
        key_serializer = (
            AvroSerializer(self.client, key_schema, conf=dict(SERDE_CONF))
            if key_schema is not None
            else None
        )
        value_ctx = SerializationContext(topic, MessageField.VALUE)
        key_ctx = SerializationContext(topic, MessageField.KEY)

        # Serialize everything first: a registry error then surfaces before anything is sent.
        records: list[tuple[bytes | None, bytes | None]] = []
        for i, value in enumerate(values):
            key = None if keys is None else keys[i]
            if key_serializer is not None:
                key = key_serializer(key, key_ctx)
            elif isinstance(key, str):
                key = key.encode()
            if serializer is not None:
                value = serializer(value, value_ctx)
            elif isinstance(value, str):
                value = value.encode()
            records.append((key, value))

        producer = Producer(
            {"bootstrap.servers": self.brokers, "linger.ms": 5, "enable.idempotence": True}
        )
        delivered: dict[int, tuple[int, int]] = {}
        errors: list[str] = []

        def on_delivery(index: int) -> Callable[[Any, Any], None]:
            def report(error, message) -> None:
                if error is not None:
                    errors.append(str(error))
                else:
                    delivered[index] = (message.partition(), message.offset())

            return report

        for i, (key, value) in enumerate(records):
            extra = {} if timestamps is None else {"timestamp": timestamps[i]}
            while True:
                try:
                    producer.produce(
                        topic,
                        value=value,
                        key=key,
                        partition=partition,
                        on_delivery=on_delivery(i),
                        **extra,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        remaining = producer.flush(60)
        if remaining or errors or len(delivered) != len(records):
            raise RuntimeError(
                f"producing to {topic}: {remaining} undelivered, errors: {errors[:3]}"
            )

        framed = serializer is not None
        return [
            Produced(
                partition=delivered[i][0],
                offset=delivered[i][1],
                schema_id=framed_schema_id(value) if framed and value is not None else None,
                key_schema_id=(
                    framed_schema_id(key)
                    if key_serializer is not None and key is not None
                    else None
                ),
                key=key,
                value=value,
            )
            for i, (key, value) in enumerate(records)
        ]


# --------------------------------------------------------------------------------------------
# Reading back (to check the helpers themselves, with the reference deserializers)
# --------------------------------------------------------------------------------------------

Deserialize = Callable[[bytes | None, SerializationContext], Any]


def consume(
    topic: str,
    count: int,
    value_deserializer: Deserialize | None = None,
    key_deserializer: Deserialize | None = None,
    brokers: str = BROKERS,
    timeout: float = 30.0,
) -> list[Consumed]:
    """Read the first ``count`` records of ``topic`` (all partitions, from the beginning, no
    group offsets committed) through the given deserializers (``None``: the bytes as they
    are); sorted by partition, then offset. Fails when fewer arrive within ``timeout``."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"kafkars-registry-check-{uuid.uuid4().hex[:10]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise KafkaException(metadata.error)
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        value_ctx = SerializationContext(topic, MessageField.VALUE)
        key_ctx = SerializationContext(topic, MessageField.KEY)
        records: list[Consumed] = []
        deadline = time.monotonic() + timeout
        while len(records) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {len(records)} of {count} records after {timeout}s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            key, value = message.key(), message.value()
            records.append(
                Consumed(
                    partition=message.partition(),
                    offset=message.offset(),
                    key=key if key_deserializer is None else key_deserializer(key, key_ctx),
                    value=(
                        value
                        if value_deserializer is None
                        else value_deserializer(value, value_ctx)
                    ),
                )
            )
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r.partition, r.offset))


# --------------------------------------------------------------------------------------------
# The registry behind a proxy: with a password, and counting requests
# --------------------------------------------------------------------------------------------


class RegistryProxy:
    """The test registry behind a proxy on a loopback port of its own, which records every
    request path in ``requests`` and, given ``user`` and ``password``, wants HTTP basic auth.

    The local registry has no users; with credentials set, the proxy answers 401 (with the
    Confluent-style JSON error body) unless a request carries ``Authorization: Basic`` for
    ``user:password``, and forwards the others unchanged. Use it as a context manager; ``url``
    is its base URL.
    """

    def __init__(
        self,
        user: str | None = None,
        password: str | None = None,
        upstream: str = REGISTRY_URL,
    ) -> None:
        import base64
        import http.server
        import threading
        import urllib.error

        expected = (
            None
            if user is None
            else "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        )
        requests: list[str] = []
        self.requests = requests
        prefix = urllib.parse.urlsplit(upstream).path.rstrip("/")
        origin = upstream[: len(upstream) - len(prefix)] if prefix else upstream

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if expected is not None and self.headers.get("Authorization") != expected:
                    self.reply(401, b'{"error_code": 401, "message": "Unauthorized"}')
                    return
                try:
                    with urllib.request.urlopen(origin + self.path, timeout=10) as response:
                        self.reply(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self.reply(error.code, error.read())

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{prefix}"

    def __enter__(self) -> RegistryProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
