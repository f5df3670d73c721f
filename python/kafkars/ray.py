"""Read Kafka topics into a Ray Dataset: one Ray Data read task per offset range.

The plan is resolved once, on the driver (:func:`kafkars.plan`), or given (a saved plan,
e.g. from :meth:`kafkars.OffsetRange.list_from_json`): every task then reads exactly its
``[start, stop)`` with :func:`kafkars.read_range`, so the dataset holds exactly the records
of those offsets, each once, whichever worker reads it and however often a task is retried.
Order holds within each range (offset order); across ranges there is none.

Ray is an optional dependency: ``pip install 'kafkars[ray]'``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

try:
    import pyarrow as pa
    import ray.data
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask
except ImportError as error:  # pragma: no cover - exercised in a venv without Ray
    raise ImportError(
        f"kafkars.ray needs Ray Data ({error}); install it with: pip install 'kafkars[ray]'"
    ) from error

from kafkars._internal import DecodeError, KafkarsError, SchemaRegistryError
from kafkars.manager import DEFAULT_MAX_BUFFER_BYTES, DEFAULT_TIMEOUT_MS, SourceTopic
from kafkars.plan import COLUMNS, DEFAULT_BATCH_SIZE, OffsetRange, plan, read_range

__all__ = ["KafkaRangesDatasource", "RetriableReadError", "read_kafka"]

#: Default attempts after the first for a range whose read failed with a
#: :class:`RetriableReadError`.
DEFAULT_MAX_RETRIES = 3


class RetriableReadError(KafkarsError):
    """Raised by a read task when reading its range failed for a reason a new attempt may
    not meet (brokers unreachable, no progress within the timeout); Ray retries the task."""


class KafkaRangesDatasource(Datasource):
    """A Ray Data datasource of offset ranges: one :class:`ray.data.ReadTask` per range,
    reading it with :func:`kafkars.read_range`.

    Its row count is unknown before reading (``stop - start`` only bounds it: transaction
    markers and compacted-away offsets take offsets too), so ``count()`` reads. Column
    projections (``select_columns``, and ``count()``'s empty one) are pushed down to the
    reader: columns not asked for are neither copied nor decoded.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        ranges: Sequence[OffsetRange],
        columns: Sequence[str] | None,
        read_options: Mapping[str, Any],
    ) -> None:
        super().__init__()
        self._config = dict(config)
        self._ranges = list(ranges)
        self._columns = None if columns is None else list(columns)
        self._read_options = dict(read_options)
        self._projection_map: dict[str, str] | None = None

    def get_name(self) -> str:
        return "Kafka"

    def supports_projection_pushdown(self) -> bool:
        return True

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def _projected_columns(self) -> list[str] | None:
        """The columns to read: the reader's, narrowed by a pushed-down projection."""
        pushed = self._projection_map
        if pushed is None:
            return self._columns
        base = self._columns if self._columns is not None else list(COLUMNS)
        projected = [name for name in base if name in pushed]
        # No column at all (count()'s projection): Ray 2.60 counts a block without columns as
        # empty, so read the cheapest column, which copies no key, value or header.
        return projected or ["offset"]

    def get_read_tasks(
        self,
        parallelism: int,
        per_task_row_limit: int | None = None,
        data_context: Any = None,
    ) -> list[ReadTask]:
        columns = self._projected_columns()
        return [
            ReadTask(
                functools.partial(
                    _read_task, self._config, offset_range, columns, self._read_options
                ),
                BlockMetadata(
                    # Unknown: a bound here would make Ray's count() answer from metadata.
                    num_rows=None,
                    size_bytes=None,
                    # Ray estimates a read's block count from its input files when it knows
                    # no size; with none, count() of a fresh dataset says 0 without reading.
                    input_files=[_describe(offset_range)],
                    exec_stats=None,
                ),
                per_task_row_limit=per_task_row_limit,
            )
            for offset_range in self._ranges
            if offset_range.offsets > 0
        ]


def _describe(offset_range: OffsetRange) -> str:
    """A range as an "input file" of Ray's metadata: ``kafka://topic/partition/start-stop``."""
    r = offset_range
    return f"kafka://{r.topic}/{r.partition}/{r.start}-{r.stop}"


def _read_task(
    config: Mapping[str, Any],
    offset_range: OffsetRange,
    columns: list[str] | None,
    read_options: Mapping[str, Any],
) -> Iterator[pa.Table]:
    """One read task: the range's batches as Arrow tables.

    A retried task yields the same blocks again: every batch but the last holds exactly
    ``batch_size`` rows, so block boundaries do not depend on fetch timing."""
    try:
        reader = read_range(config, offset_range, columns, **read_options)
        empty = True
        for batch in reader:
            empty = False
            yield pa.Table.from_batches([batch])
        if empty:
            # A range of only markers or aborted records: an empty block of the right schema
            # (Ray would make a block without columns, which Arrow cannot concatenate).
            yield reader.schema.empty_table()
    except (DecodeError, SchemaRegistryError):
        raise
    except RetriableReadError:
        raise
    except KafkarsError as error:
        raise RetriableReadError(f"{error} (reading {offset_range})") from error


def read_kafka(
    config: Mapping[str, Any],
    topics: Sequence[SourceTopic] | None = None,
    *,
    ranges: Sequence[OffsetRange] | None = None,
    cutoff_ms: int | None = None,
    split_size: int | None = None,
    columns: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
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
    concurrency: int | None = None,
    override_num_blocks: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    ray_remote_args: Mapping[str, Any] | None = None,
) -> ray.data.Dataset:
    """A Ray Dataset of Kafka records: ``topics`` planned once here, or the saved ``ranges``.

    Args:
        config: librdkafka properties, used by the driver and by every task.
        topics: what to read (see :class:`kafkars.SourceTopic`); resolved now with
            :func:`kafkars.plan` and ``cutoff_ms``. Exactly one of ``topics`` and ``ranges``.
        ranges: a plan to read as it is (e.g. ``OffsetRange.list_from_json(saved)``): the
            same plan reads the same records, also after more arrived.
        cutoff_ms: with ``topics``: stop each partition before its first record at or after
            this time (ms since the epoch).
        split_size: with ``topics``: cut ranges longer than this many offsets into pieces,
            one task each. Default: pieces sized to give each CPU of the Ray cluster an
            equal share, at least 100,000 offsets each.
        columns: the columns of the dataset, out of :data:`kafkars.plan.COLUMNS` (all when
            None); ``Dataset.select_columns`` narrows them further, also before reading.
        batch_size: rows per block, at most.
        max_buffer_bytes: each task's memory budget in bytes.
        timeout_ms: how long the driver and each task wait for the brokers and for progress.
        value_format, ...: decoding, as for :class:`kafkars.ConsumerManager`.
        concurrency: at most this many read tasks at once (default: as Ray decides).
        override_num_blocks: the blocks Ray cuts the tasks' output into. Default: one
            stream of blocks per task, each at most ``batch_size`` rows (Ray's own default
            would cut every task's output into up to 200 / tasks pieces, and each piece
            becomes a task of its own in every following ``map_batches``).
        max_retries: attempts after the first for a task whose read failed with
            :class:`RetriableReadError` (also, as always with Ray, for a worker that died).
        ray_remote_args: more :func:`ray.remote` options for the read tasks.

    Returns:
        A lazy ``ray.data.Dataset`` with the kafkars schema (projected to ``columns``), one
        read task per non-empty range.

    Raises:
        TypeError: for arguments of the wrong type.
        ValueError: for both or neither of ``topics`` and ``ranges``, unknown ``columns``,
            a ``split_size`` below 1, or a bad config or decoding keyword.
        KafkarsError: when planning fails (brokers unreachable, a topic missing). Errors of
            the tasks (a range retention deleted, undecodable records) surface when the
            dataset is consumed.
    """
    if (topics is None) == (ranges is None):
        raise ValueError("give exactly one of topics (to plan now) and ranges (a saved plan)")
    if ranges is not None:
        if cutoff_ms is not None or split_size is not None:
            raise ValueError("cutoff_ms and split_size apply to topics, not to a saved plan")
        planned = [_offset_range(item) for item in ranges]
    else:
        workers = None
        if split_size is None:
            # As Ray Data does when a dataset first runs: a local cluster unless one is up.
            if not ray.is_initialized():
                ray.init()
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        planned = plan(
            config, topics, cutoff_ms, split_size, workers=workers, timeout_ms=timeout_ms
        )
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"invalid max_retries: expected a non-negative int, found {max_retries!r}")
    read_options = {
        "batch_size": batch_size,
        "max_buffer_bytes": max_buffer_bytes,
        "timeout_ms": timeout_ms,
        "value_format": value_format,
        "key_format": key_format,
        "schema_registry": schema_registry,
        "schema_registry_config": schema_registry_config,
        "value_schema": value_schema,
        "key_schema": key_schema,
        "value_message": value_message,
        "key_message": key_message,
        "value_subject": value_subject,
        "key_subject": key_subject,
        "value_schema_id": value_schema_id,
        "key_schema_id": key_schema_id,
        "on_error": on_error,
        "json_sample_size": json_sample_size,
    }
    if columns is not None:
        if isinstance(columns, str | bytes) or not isinstance(columns, Sequence):
            raise TypeError(f"columns must be a list of column names, not {type(columns).__name__}")
        unknown = [name for name in columns if name not in COLUMNS]
        if unknown:
            raise ValueError(
                f"invalid columns: unknown column {unknown[0]!r}; the columns are "
                + ", ".join(COLUMNS)
            )
    remote_args = {"max_retries": max_retries, "retry_exceptions": [RetriableReadError]}
    remote_args.update(ray_remote_args or {})
    datasource = KafkaRangesDatasource(config, planned, columns, read_options)
    if override_num_blocks is None:
        override_num_blocks = max(1, sum(1 for r in planned if r.offsets > 0))
    # Ray 2.60 takes max_retries and retry_exceptions only through ray_remote_args, which it
    # marks deprecated for a successor that does not exist yet.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ray.data.read_datasource(
            datasource,
            concurrency=concurrency,
            override_num_blocks=override_num_blocks,
            ray_remote_args=remote_args,
        )


def _offset_range(value: object) -> OffsetRange:
    if not isinstance(value, OffsetRange):
        raise TypeError(
            f"ranges must hold OffsetRange objects, found {type(value).__name__} {value!r}"
        )
    return value
