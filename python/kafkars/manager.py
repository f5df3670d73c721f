"""Streaming Kafka topics into Arrow: :class:`ConsumerManager` and :class:`SourceTopic`."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pyarrow as pa

from kafkars._internal import RawConsumerManager

__all__ = ["ConsumerManager", "SourceTopic"]

#: Default memory budget: our buffers plus librdkafka's prefetch queues.
DEFAULT_MAX_BUFFER_BYTES = 256 * 1024 * 1024
#: Default time a silent partition may hold live delivery back.
DEFAULT_IDLE_TIMEOUT_MS = 1_000
#: Default time to wait for brokers, metadata and replay progress.
DEFAULT_TIMEOUT_MS = 30_000
#: Default time between two looks for partitions created while the manager runs.
DEFAULT_METADATA_REFRESH_MS = 5_000
#: The longest ``timeout_ms``: librdkafka takes timeouts as a C ``int`` of milliseconds.
MAX_TIMEOUT_MS = 2**31 - 1
#: The largest count, size or millisecond value the engine takes (a signed 64-bit integer).
_MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class SourceTopic:
    """A topic to read and where its partitions start.

    Build one with :meth:`from_earliest`, :meth:`from_latest`, :meth:`from_timestamp` (alias
    :meth:`from_absolute_time`), :meth:`from_relative_time`, :meth:`from_offsets` (where
    each partition starts, e.g. where the last load stopped) or :meth:`from_pattern` (every
    topic whose name matches a regular expression).
    """

    name: str
    policy: str
    argument_ms: int | None = None
    #: Explicit ``(partition, start offset)`` pairs (:meth:`from_offsets`), sorted.
    offsets: tuple[tuple[int, int], ...] | None = None
    #: Whether ``name`` is a regular expression over topic names (:meth:`from_pattern`).
    pattern: bool = False

    @classmethod
    def from_earliest(cls, name: str) -> SourceTopic:
        """Start every partition at the first message still stored."""
        return cls(_topic_name(name), "earliest")

    @classmethod
    def from_latest(cls, name: str) -> SourceTopic:
        """Start at the end: no history, only messages that arrive from now on."""
        return cls(_topic_name(name), "latest")

    @classmethod
    def from_timestamp(cls, name: str, timestamp_ms: int) -> SourceTopic:
        """Start at the first message whose timestamp is at or after ``timestamp_ms`` (ms
        since the epoch)."""
        return cls(_topic_name(name), "timestamp", _milliseconds("timestamp_ms", timestamp_ms))

    from_absolute_time = from_timestamp

    @classmethod
    def from_relative_time(cls, name: str, lookback_ms: int) -> SourceTopic:
        """Start at the first message of the last ``lookback_ms`` milliseconds."""
        return cls(_topic_name(name), "relative", _milliseconds("lookback_ms", lookback_ms))

    @classmethod
    def from_offsets(cls, name: str, offsets: Mapping[int, int]) -> SourceTopic:
        """Start the named partitions at the given offsets (inclusive); others at the earliest.

        ``offsets`` maps partition → offset: an offset >= 0, ``-2`` for the log start or
        ``-1`` for the end of the log (as Spark's Kafka source and librdkafka write them). A
        resumed load passes the stop offsets of the previous one. An offset below the
        partition's log start (deleted by retention) or past its end makes the read raise
        ``ValueError`` naming topic, partition and offsets; so does a partition the topic
        does not have.

        Raises:
            TypeError: if ``offsets`` is not a mapping of int to int.
            ValueError: for a negative partition or an offset below -2.
        """
        name = _topic_name(name)
        if not isinstance(offsets, Mapping):
            raise TypeError(
                f"offsets must be a mapping of partition to offset, not {type(offsets).__name__}"
            )
        pairs = []
        for partition, offset in offsets.items():
            for what, value in (("partition", partition), ("offset", offset)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(
                        f"offsets: a {what} must be an int, found {type(value).__name__} {value!r}"
                    )
            if partition < 0 or partition > 2**31 - 1:
                raise ValueError(
                    f"invalid offsets: partition numbers go from 0 to 2**31 - 1, found {partition}"
                )
            if offset < -2 or offset > _MAX_INT64:
                raise ValueError(
                    "invalid offsets: expected an offset >= 0, -2 (the log start) or -1 (the end "
                    f"of the log), found {offset} for partition {partition} of topic '{name}'"
                )
            pairs.append((partition, offset))
        return cls(name, "earliest", offsets=tuple(sorted(pairs)))

    @classmethod
    def from_pattern(
        cls, pattern: str, policy: str = "earliest", argument_ms: int | None = None
    ) -> SourceTopic:
        """Read every topic whose name matches the regular expression ``pattern``.

        The pattern matches anywhere in a name unless anchored (``'^events-'``), in the syntax
        of Rust's ``regex`` crate (close to Python's ``re``). Kafka's own topics
        (``__consumer_offsets``, ...) match only a pattern that names them. The topics that
        match when the read starts are resolved once, and their partitions start by ``policy``
        (``'earliest'``, ``'latest'``, ``'timestamp'`` or ``'relative'``, the last two with
        ``argument_ms`` as in :meth:`from_timestamp` / :meth:`from_relative_time`). A
        :class:`ConsumerManager` also picks up matching topics created while it runs (every
        ``metadata_refresh_ms``), and reads them from their first message.

        Raises:
            TypeError: if ``pattern`` is not a str.
            ValueError: for an empty pattern (a malformed one, or one that matches no topic,
                raises ``ValueError`` when the read starts).
        """
        if not isinstance(pattern, str):
            raise TypeError(
                f"pattern must be a str (a regular expression), not {type(pattern).__name__}"
            )
        if not pattern.strip():
            raise ValueError(
                "invalid pattern: expected a regular expression over topic names, found an "
                "empty string"
            )
        if argument_ms is not None:
            argument_ms = _milliseconds("argument_ms", argument_ms)
        return cls(pattern, policy, argument_ms, pattern=True)

    def _arguments(self) -> tuple[str, str, int | None, list[tuple[int, int]] | None, bool]:
        """The tuple the engine takes (see ``kafkars._internal``)."""
        offsets = list(self.offsets) if self.offsets is not None else None
        return (self.name, self.policy, self.argument_ms, offsets, self.pattern)


class ConsumerManager:
    """Reads topics as ``pyarrow.RecordBatch``es: first their history in strict timestamp
    order, then, once live, what arrives.

    For each partition, the replay runs from the topic's start (see :class:`SourceTopic`) to
    its *stop offset*: the end of the log when the manager is created, or the first message at
    or after ``cutoff_ms`` if that comes first. The replay is every message before each
    partition's stop offset: a message stamped before ``cutoff_ms`` but written after a
    later-stamped one of its partition comes after the replay. Replayed rows come merged by
    (timestamp, topic, partition, offset), each partition in offset order, exactly as
    ``kafka_scan`` returns them; a record without a timestamp (Kafka's -1) has a null
    ``timestamp`` and ``timestamp_type`` and is released as soon as it is its partition's head.

    The :meth:`poll` that returns the last replayed rows returns no row past a stop, and
    :meth:`is_live` is true from then on, so ``process(batch); if manager.is_live(): break``
    processes exactly the replay. Live, new messages stream in as they arrive. A partition
    that has reached the end of its log (the broker's high watermark) with nothing buffered
    does not hold the others back; one that delivers nothing without having reached its end
    stops holding them back after ``idle_timeout_ms``. Live order is best effort.

    Partitions added to the topics while the manager runs are read too, from their first
    message: every ``metadata_refresh_ms`` the manager asks the cluster for the topics'
    partitions. A partition found during the replay joins once the manager is live (the
    replay stays exactly the partitions it resolved); :meth:`partition_state` lists it from
    when it was found.

    ``config`` holds librdkafka consumer properties (``bootstrap.servers``, security, ...).
    A ``group.id`` is accepted and never used: no group is joined, no offset committed.

    The manager is a context manager, and iterating over it yields non-empty batches for as
    long as it runs.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        topics: Sequence[SourceTopic],
        cutoff_ms: int | None = None,
        batch_size: int = 10_000,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        metadata_refresh_ms: int = DEFAULT_METADATA_REFRESH_MS,
        *,
        value_format: str = "bytes",
        key_format: str = "bytes",
        schema_registry: str | None = None,
        schema_registry_config: Mapping[str, Any] | None = None,
        value_schema: str | None = None,
        key_schema: str | None = None,
        value_message: str | None = None,
        key_message: str | None = None,
        value_subject: str | None = None,
        key_subject: str | None = None,
        value_schema_id: int | None = None,
        key_schema_id: int | None = None,
        on_error: str = "fail",
        json_sample_size: int = 1_000,
    ) -> None:
        """Resolve every partition's start and stop and begin fetching.

        Keys and values are ``binary`` columns unless ``key_format`` / ``value_format`` says
        how to decode them (the same parameters as ``kafka_scan``):

        - ``'avro'`` / ``'protobuf'``: Confluent-framed records (byte 0, the 4-byte schema
          id, the body) decoded with the latest schema of the subject ``<topic>-value``
          (``-key``) in ``schema_registry`` as the reader schema (``value_subject`` or
          ``value_schema_id`` choose another), each record's writer schema resolved to it;
          or with an inline ``value_schema`` (Avro JSON or ``.proto`` text, with
          ``value_message`` naming the Protobuf message). A record becomes a ``struct``.
        - ``'json'``: typed by the registry's JSON Schema, an inline JSON Schema, or, with
          neither, inferred from the first ``json_sample_size`` messages.
        - ``schema_registry_config``: ``basic.auth.user.info`` (``user:password``),
          ``ssl.ca.location``, ``timeout.ms``, ...; secrets never appear in errors.
        - ``on_error``: ``'fail'`` raises :class:`kafkars.DecodeError` naming topic,
          partition, offset and schema id; ``'null'`` makes the column null and adds a
          ``decode_error`` string column saying why.

        Raises:
            TypeError: if ``config`` is not a mapping of str keys, ``topics`` holds
                something other than :class:`SourceTopic`, or a number is not an int.
            ValueError: for an empty topic list, a non-positive ``batch_size`` or
                ``metadata_refresh_ms``, a budget or timeout out of range, a config value
                that is None, a property librdkafka
                doesn't know or refuses, or a config that would commit offsets.
            KafkarsError: if the brokers can't be reached within ``timeout_ms`` or a topic
                doesn't exist; :class:`kafkars.SchemaRegistryError` if the registry can't
                be reached or lacks the subject; :class:`kafkars.DecodeError` if a schema
                can't be used.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, not {type(config).__name__}")
        if isinstance(topics, str | bytes) or not isinstance(topics, Sequence):
            raise TypeError("topics must be a list of SourceTopic")
        if not topics:
            raise ValueError("topics must name at least one SourceTopic")
        for topic in topics:
            if not isinstance(topic, SourceTopic):
                raise TypeError(
                    f"topics must hold SourceTopic objects, found {type(topic).__name__} "
                    f"{topic!r}; use SourceTopic.from_earliest({topic!r}) and friends"
                )
        if cutoff_ms is None:
            cutoff_ms = int(time.time() * 1000)
        self._raw = RawConsumerManager(
            {_config_key(key): _config_value(key, value) for key, value in config.items()},
            [topic._arguments() for topic in topics],
            _milliseconds("cutoff_ms", cutoff_ms),
            _positive("batch_size", batch_size),
            _positive("max_buffer_bytes", max_buffer_bytes),
            _milliseconds("idle_timeout_ms", idle_timeout_ms),
            _positive("timeout_ms", timeout_ms, MAX_TIMEOUT_MS),
            _positive("metadata_refresh_ms", metadata_refresh_ms),
            decoding_arguments(
                value_format=value_format,
                key_format=key_format,
                schema_registry=schema_registry,
                schema_registry_config=schema_registry_config,
                value_schema=value_schema,
                key_schema=key_schema,
                value_message=value_message,
                key_message=key_message,
                value_subject=value_subject,
                key_subject=key_subject,
                value_schema_id=value_schema_id,
                key_schema_id=key_schema_id,
                on_error=on_error,
                json_sample_size=json_sample_size,
            ),
        )

    def poll(self, timeout_ms: int = 1000) -> pa.RecordBatch:
        """Return the next rows, at most ``batch_size``, waiting up to ``timeout_ms`` for the
        first; a batch with no rows when nothing came in time. A batch holds at most a 32nd
        of ``max_buffer_bytes`` (as messages are counted against it), so that it is inside
        the memory budget along with the batch before it, which a loop over batches still
        holds: with large messages, fewer than ``batch_size`` rows.

        The GIL is released while waiting and while the batch is built; Ctrl-C interrupts
        the wait. Batches have the kafkars schema: ``topic, partition, offset, timestamp,
        timestamp_type, key, value, headers``.

        Raises:
            RuntimeError: if the manager is closed.
            KafkarsError: if reading fails (a stalled replay, a deleted topic, ...).
        """
        schema, array = self._raw.poll(_milliseconds("timeout_ms", timeout_ms))
        return pa.RecordBatch._import_from_c_capsule(schema, array)

    def is_live(self) -> bool:
        """Whether every message before the stop offsets has been returned by :meth:`poll`.

        True right after the poll that returned the last replayed rows (that poll returns no
        later row)."""
        return self._raw.is_live()

    def partition_state(self) -> list[dict[str, Any]]:
        """Per partition: ``topic``, ``partition``, ``start``, ``stop``, ``position`` (the
        offset after the last message returned), ``buffered_messages``, ``buffered_bytes``,
        ``paused`` (left unread to stay within the budget) and ``live`` (its replay is
        complete).

        The partitions resolved at the start come in (topic, partition) order, then those
        added to the topics later, in the order they were found, each with ``start`` and
        ``stop`` at its first offset (it has nothing to replay)."""
        return self._raw.partition_state()

    def close(self) -> None:
        """Stop fetching and release the consumer. Idempotent."""
        self._raw.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._raw.closed

    def __enter__(self) -> ConsumerManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """Yield non-empty batches until the manager is closed."""
        while not self.closed:
            batch = self.poll(timeout_ms=1000)
            if batch.num_rows:
                yield batch

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("live" if self.is_live() else "replaying")
        return f"<ConsumerManager {state}>"


def decoding_arguments(
    *,
    value_format: object,
    key_format: object,
    schema_registry: object,
    schema_registry_config: object,
    value_schema: object,
    key_schema: object,
    value_message: object,
    key_message: object,
    value_subject: object,
    key_subject: object,
    value_schema_id: object,
    key_schema_id: object,
    on_error: object,
    json_sample_size: object,
) -> dict[str, Any]:
    """The decoding keywords (see :class:`ConsumerManager`) checked and converted for the
    compiled readers, which take them as this one dict.

    Raises:
        TypeError: for a keyword of the wrong type.
        ValueError: for a non-positive ``json_sample_size``, a registry config value of None
            or an id out of range.
    """
    return {
        "value_format": _text("value_format", value_format),
        "key_format": _text("key_format", key_format),
        "schema_registry": _optional_text("schema_registry", schema_registry),
        "schema_registry_config": _registry_config(schema_registry_config),
        "value_schema": _optional_text("value_schema", value_schema),
        "key_schema": _optional_text("key_schema", key_schema),
        "value_message": _optional_text("value_message", value_message),
        "key_message": _optional_text("key_message", key_message),
        "value_subject": _optional_text("value_subject", value_subject),
        "key_subject": _optional_text("key_subject", key_subject),
        "value_schema_id": _optional_int("value_schema_id", value_schema_id),
        "key_schema_id": _optional_int("key_schema_id", key_schema_id),
        "on_error": _text("on_error", on_error),
        "json_sample_size": _positive("json_sample_size", json_sample_size),
    }


def _topic_name(name: object) -> str:
    """``name`` checked as a topic name (Kafka's naming rule is checked by the engine)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (a topic name), not {type(name).__name__}")
    if not name:
        raise ValueError("invalid name: expected a topic name, found an empty string")
    return name


def _milliseconds(parameter: str, value: object) -> int:
    """``value`` checked as a count of milliseconds: an int from 0 to 2**63 - 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int (milliseconds), not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"invalid {parameter}: expected a non-negative number, found {value}")
    if value > _MAX_INT64:
        raise ValueError(f"invalid {parameter}: expected at most {_MAX_INT64}, found {value}")
    return value


def _positive(parameter: str, value: object, maximum: int = _MAX_INT64) -> int:
    """``value`` checked as an int from 1 to ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"invalid {parameter}: expected a positive number, found {value}")
    if value > maximum:
        raise ValueError(f"invalid {parameter}: expected at most {maximum}, found {value}")
    return value


def _text(parameter: str, value: object) -> str:
    """``value`` checked as a str."""
    if not isinstance(value, str):
        raise TypeError(f"{parameter} must be a str, not {type(value).__name__}")
    return value


def _optional_text(parameter: str, value: object) -> str | None:
    """``value`` checked as a str or None."""
    return None if value is None else _text(parameter, value)


def _optional_int(parameter: str, value: object) -> int | None:
    """``value`` checked as an int or None (range checks are the engine's)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{parameter} must be an int, not {type(value).__name__}")
    if not -_MAX_INT64 - 1 <= value <= _MAX_INT64:
        raise ValueError(f"invalid {parameter}: {value} is out of range")
    return value


def _registry_config(config: object) -> list[tuple[str, str]] | None:
    """``schema_registry_config`` as (key, value) strings."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise TypeError(f"schema_registry_config must be a mapping, not {type(config).__name__}")
    pairs = []
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError(f"schema_registry_config keys must be str, found {key!r}")
        if value is None:
            raise ValueError(
                f"invalid schema_registry_config: '{key}' is None; give it a value or leave it out"
            )
        pairs.append((key, str(value)))
    return pairs


def _config_key(key: object) -> str:
    """librdkafka property names are strings; anything else is a mistake, not a name."""
    if not isinstance(key, str):
        raise TypeError(
            f"config keys must be str (librdkafka property names), found {type(key).__name__} "
            f"{key!r}"
        )
    return key


def _config_value(key: str, value: object) -> str:
    """librdkafka properties are strings; booleans are spelled the way it expects. None is
    refused rather than sent as the text 'None'."""
    if value is None:
        raise ValueError(
            f"invalid config: property '{key}' is None; give it a value or leave it out"
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
