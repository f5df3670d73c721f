"""Plans: topics resolved once into offset ranges (:func:`plan`), saved and shipped as
:class:`OffsetRange`, and read one range at a time (:func:`read_range`), anywhere.

A plan fixes what a read returns: every range is ``[start, stop)`` of one partition, resolved
at one moment. Reading a range later, in another process or on another machine, returns
exactly the records of those offsets that the log holds (records of aborted transactions,
transaction markers and compacted-away offsets are absent). :mod:`kafkars.ray` runs one Ray
task per range of such a plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from kafkars import _internal
from kafkars.manager import (
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_TIMEOUT_MS,
    MAX_TIMEOUT_MS,
    SourceTopic,
    _config_key,
    _config_value,
    _milliseconds,
    _positive,
    decoding_arguments,
)

__all__ = ["COLUMNS", "OffsetRange", "RangeReader", "plan", "read_range"]

#: The columns a batch can have, in schema order (``decode_error`` only with
#: ``on_error='null'`` and a key or value format).
COLUMNS = (
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp_type",
    "key",
    "value",
    "headers",
    "decode_error",
)

#: Default rows per batch of :func:`read_range`.
DEFAULT_BATCH_SIZE = 100_000
_MAX_INT64 = 2**63 - 1
_MAX_INT32 = 2**31 - 1


@dataclass(frozen=True)
class OffsetRange:
    """The offsets ``[start, stop)`` of one partition: one piece of a plan.

    ``stop - start`` bounds the number of records from above (transaction markers, aborted
    and compacted-away records take offsets too). Ranges are frozen, hashable and picklable,
    and round-trip through JSON (:meth:`to_json`, :meth:`list_to_json`).

    Raises (on construction):
        TypeError: if ``topic`` is not a str or an offset or partition is not an int.
        ValueError: for an empty topic, a negative partition or offset, or ``stop < start``.
    """

    topic: str
    partition: int
    start: int
    stop: int

    def __post_init__(self) -> None:
        if not isinstance(self.topic, str):
            raise TypeError(f"topic must be a str, not {type(self.topic).__name__}")
        if not self.topic:
            raise ValueError("invalid topic: expected a topic name, found an empty string")
        bounds = (("partition", _MAX_INT32), ("start", _MAX_INT64), ("stop", _MAX_INT64))
        for name, maximum in bounds:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not 0 <= value <= maximum:
                raise ValueError(
                    f"invalid {name}: expected a number from 0 to {maximum}, found {value} "
                    f"(topic '{self.topic}')"
                )
        if self.stop < self.start:
            raise ValueError(
                f"invalid stop: expected an offset at or after start {self.start}, found "
                f"{self.stop} (topic '{self.topic}' partition {self.partition})"
            )

    @property
    def offsets(self) -> int:
        """``stop - start``: an upper bound of the records in the range."""
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        """``{"topic": ..., "partition": ..., "start": ..., "stop": ...}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OffsetRange:
        """The range of a :meth:`to_dict` mapping.

        Raises:
            TypeError, ValueError: if a key is missing or extra, or a value is invalid.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"an offset range must be a JSON object, not {type(data).__name__}")
        keys = {"topic", "partition", "start", "stop"}
        if set(data) != keys:
            raise ValueError(
                f"invalid offset range {dict(data)!r}: expected exactly the keys "
                "topic, partition, start, stop"
            )
        return cls(data["topic"], data["partition"], data["start"], data["stop"])

    def to_json(self) -> str:
        """This range as a JSON object."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> OffsetRange:
        """The range of a :meth:`to_json` text.

        Raises:
            ValueError: for malformed JSON or an invalid range (json.JSONDecodeError is a
                ValueError); TypeError for values of the wrong type.
        """
        return cls.from_dict(json.loads(text))

    @staticmethod
    def list_to_json(ranges: Sequence[OffsetRange]) -> str:
        """A plan (a list of ranges) as a JSON array of objects."""
        return json.dumps([_checked_range(r).to_dict() for r in ranges])

    @staticmethod
    def list_from_json(text: str) -> list[OffsetRange]:
        """The plan of a :meth:`list_to_json` text.

        Raises:
            ValueError, TypeError: as :meth:`from_json`, or if the JSON is not an array.
        """
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"a plan must be a JSON array of ranges, not {type(data).__name__}")
        return [OffsetRange.from_dict(item) for item in data]


def plan(
    config: Mapping[str, Any],
    topics: Sequence[SourceTopic],
    cutoff_ms: int | None = None,
    split_size: int | None = None,
    *,
    workers: int | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
) -> list[OffsetRange]:
    """Resolve ``topics`` into the ranges a read would cover, once, without reading them.

    Every partition of every topic gets ``[start, stop)``: the start by its
    :class:`SourceTopic` policy, the stop at the end of the log now (the last stable offset
    under ``read_committed``) or, with ``cutoff_ms`` (ms since the epoch), at the first
    offset whose timestamp is at or after it, whichever comes first. A few batched requests
    per broker, whatever the number of partitions.

    Args:
        config: librdkafka properties (``bootstrap.servers``, security, ...).
        topics: what to read; each name once.
        cutoff_ms: stop each partition before its first record at or after this time.
        split_size: cut ranges longer than this many offsets into consecutive pieces, so
            that more readers than partitions share the work.
        workers: without ``split_size``, cut ranges so that about ``workers`` readers get
            equal shares (pieces of at least 100,000 offsets).
        timeout_ms: how long to wait for the brokers.

    Returns:
        The ranges in (topic, partition, start) order; empty partitions give empty ranges
        (``start == stop``).

    Raises:
        TypeError: for arguments of the wrong type.
        ValueError: for no topics, a topic named twice, ``split_size`` or ``workers`` below
            1, or an invalid config.
        KafkarsError: if the brokers can't be reached within ``timeout_ms`` or a topic
            doesn't exist.
    """
    selections = _topics(topics)
    if split_size is not None:
        _positive("split_size", split_size)
    if workers is not None:
        _positive("workers", workers)
    resolved = _internal.plan(
        _config(config),
        selections,
        None if cutoff_ms is None else _milliseconds("cutoff_ms", cutoff_ms),
        _positive("timeout_ms", timeout_ms, MAX_TIMEOUT_MS),
        split_size=split_size,
        workers=workers,
    )
    return [OffsetRange(*item) for item in resolved]


def read_range(
    config: Mapping[str, Any],
    range: OffsetRange,
    columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
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
) -> RangeReader:
    """Read exactly ``range``: the records of one partition at offsets ``start`` to
    ``stop - 1``, in offset order, as ``pyarrow.RecordBatch``es of at most ``batch_size``
    rows.

    The range is checked against the log when reading begins, and the read ends as soon as
    the partition reaches ``stop``, also when the last offsets are transaction markers or
    were compacted away. Nothing is committed, no group joined.

    Args:
        config: librdkafka properties.
        range: what to read, usually one piece of :func:`plan`.
        columns: the columns batches hold, in this order, out of :data:`COLUMNS` (all when
            None). Fields that are not asked for are not copied, and keys or values that are
            not asked for are not decoded.
        batch_size: rows per batch, at most.
        max_buffer_bytes: the memory budget in bytes (at least 64 KiB).
        timeout_ms: how long to wait for the brokers, and for progress while reading.
        value_format, key_format, schema_registry, ...: decoding, as for
            :class:`kafkars.ConsumerManager`. JSON types inferred without a schema come from
            the first ``json_sample_size`` records of the range itself.

    Returns:
        A :class:`RangeReader`: an iterator of ``pyarrow.RecordBatch``es of the kafkars
        schema (projected to ``columns``, also its ``schema`` attribute); none for a range
        without records.

    Raises:
        TypeError: for arguments of the wrong type.
        ValueError: for an unknown or repeated name in ``columns``, a bad ``batch_size``,
            budget, config or decoding keyword; for a partition the topic does not have, a
            start that retention deleted, or a stop past the end of the log (naming topic,
            partition, the offset and the log's bounds).
        KafkarsError: if the brokers can't be reached, a topic doesn't exist, or reading
            makes no progress for ``timeout_ms``; :class:`kafkars.DecodeError` and
            :class:`kafkars.SchemaRegistryError` for decoding failures.
    """
    raw = _internal.RawRangeReader(
        _config(config),
        *_range_arguments(range),
        _columns(columns),
        _positive("batch_size", batch_size),
        _positive("max_buffer_bytes", max_buffer_bytes),
        _positive("timeout_ms", timeout_ms, MAX_TIMEOUT_MS),
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
    return RangeReader(raw)


class RangeReader(Iterator[pa.RecordBatch]):
    """The batches of one range (what :func:`read_range` returns): an iterator with the
    batches' :attr:`schema`, known before the first batch and also for a range without
    records. Reading ends at the range's stop; :meth:`close` (or the end) releases the
    consumer."""

    def __init__(self, raw: _internal.RawRangeReader) -> None:
        self._raw = raw
        self.schema: pa.Schema = pa.Schema._import_from_c_capsule(raw.schema())

    def __iter__(self) -> RangeReader:
        return self

    def __next__(self) -> pa.RecordBatch:
        """The next batch (at most ``batch_size`` rows).

        Raises:
            StopIteration: once the range has been read.
            KafkarsError: if reading fails (no progress within ``timeout_ms``, ...).
        """
        exported = self._raw.next_batch()
        if exported is None:
            self._raw.close()
            raise StopIteration
        return pa.RecordBatch._import_from_c_capsule(*exported)

    def close(self) -> None:
        """Stop reading and release the consumer. Idempotent."""
        self._raw.close()

    def __del__(self) -> None:
        raw = getattr(self, "_raw", None)
        if raw is not None:
            raw.close()


def _checked_range(value: object) -> OffsetRange:
    if not isinstance(value, OffsetRange):
        raise TypeError(
            f"range must be an OffsetRange (from kafkars.plan or OffsetRange.from_json), not "
            f"{type(value).__name__}"
        )
    return value


def _range_arguments(value: object) -> tuple[str, int, int, int]:
    checked = _checked_range(value)
    return checked.topic, checked.partition, checked.start, checked.stop


def _columns(columns: object) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str | bytes) or not isinstance(columns, Sequence):
        raise TypeError(f"columns must be a list of column names, not {type(columns).__name__}")
    for name in columns:
        if not isinstance(name, str):
            raise TypeError(f"columns must hold str names, found {type(name).__name__} {name!r}")
    return list(columns)


def _topics(topics: object) -> list[tuple[Any, ...]]:
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
    return [topic._arguments() for topic in topics]


def _config(config: object) -> dict[str, str]:
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, not {type(config).__name__}")
    return {_config_key(key): _config_value(key, value) for key, value in config.items()}
