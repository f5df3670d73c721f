"""Type stubs for the compiled module ``kafkars._internal``."""

from typing import Any

__version__: str

class KafkarsError(Exception):
    """Raised when Kafka can't be read: brokers unreachable, a topic missing, a fetch failing."""

def librdkafka_version() -> str:
    """The version of librdkafka compiled into kafkars."""

class RawConsumerManager:
    def __init__(
        self,
        config: dict[str, str],
        topics: list[tuple[str, str, int | None]],
        cutoff_ms: int,
        batch_size: int,
        max_buffer_bytes: int,
        idle_timeout_ms: int,
        timeout_ms: int,
    ) -> None: ...
    def poll(self, timeout_ms: int) -> tuple[object, object]:
        """Arrow C data interface capsules ``(schema, array)`` of a struct array."""
    def is_live(self) -> bool: ...
    def partition_state(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
