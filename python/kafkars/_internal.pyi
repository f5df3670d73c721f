"""Type stubs for the compiled module ``kafkars._internal``."""

from typing import Any

__version__: str

class KafkarsError(Exception):
    """Raised when Kafka can't be read: brokers unreachable, a topic missing, a fetch failing."""

class DecodeError(KafkarsError):
    """Raised when a key or value can't be decoded (on_error='fail') or a schema can't be used."""

class SchemaRegistryError(KafkarsError):
    """Raised when the Schema Registry can't be reached or answers with an error."""

def librdkafka_version() -> str:
    """The version of librdkafka compiled into kafkars."""

class RawConsumerManager:
    def __init__(
        self,
        config: dict[str, str],
        topics: list[tuple[str, str, int | None, list[tuple[int, int]] | None, bool]],
        cutoff_ms: int,
        batch_size: int,
        max_buffer_bytes: int,
        idle_timeout_ms: int,
        timeout_ms: int,
        metadata_refresh_ms: int,
        decoding: dict[str, Any],
    ) -> None:
        """``decoding``: the dict of ``kafkars.manager.decoding_arguments``."""
    def poll(self, timeout_ms: int) -> tuple[object, object]:
        """Arrow C data interface capsules ``(schema, array)`` of a struct array."""
    def is_live(self) -> bool: ...
    def partition_state(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

def plan(
    config: dict[str, str],
    topics: list[tuple[str, str, int | None, list[tuple[int, int]] | None, bool]],
    cutoff_ms: int | None,
    timeout_ms: int,
    split_size: int | None = None,
    workers: int | None = None,
) -> list[tuple[str, int, int, int]]:
    """``(topic, partition, start, stop)`` per range, in (topic, partition, start) order."""

class RawRangeReader:
    def __init__(
        self,
        config: dict[str, str],
        topic: str,
        partition: int,
        start: int,
        stop: int,
        columns: list[str] | None,
        batch_size: int,
        max_buffer_bytes: int,
        timeout_ms: int,
        decoding: dict[str, Any],
    ) -> None:
        """``decoding``: the dict of ``kafkars.manager.decoding_arguments``."""
    def next_batch(self) -> tuple[object, object] | None:
        """Arrow C data interface capsules ``(schema, array)``, or None once the range is read."""
    def schema(self) -> object:
        """The Arrow C data interface capsule of the batches' schema."""
    @property
    def columns(self) -> list[str]: ...
    def close(self) -> None: ...
