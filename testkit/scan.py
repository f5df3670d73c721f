"""What ``kafka_scan`` should return: the log's records, the order model, and reading back.

- :class:`Record` is one message as it lies in a partition's log (with its offset), and one row
  of ``kafka_scan`` (:func:`scan`, :func:`scan_rows` turn the rows into records).
- :func:`as_stored` is what producing messages to a fresh topic puts in its log;
  :func:`read_back` is what is physically there, read by confluent-kafka's own consumer.
- :func:`window` cuts each partition to the ``[start, stop)`` of a timestamp start and a cutoff,
  :func:`expected_offsets` gives the matching ``kafka_offsets`` rows.
- :func:`expected_scan` is the order model: the k-way merge of the partitions by
  ``(timestamp, topic, partition, offset)`` of their heads, each partition in offset order.
- :func:`batch_records` turns a ``ConsumerManager.poll`` batch into records;
  :func:`poll_until` and :func:`poll_until_live` poll a manager under a time limit;
  :class:`BackgroundQuery` runs a query (an endless ``follow := true`` one) in a thread.
"""

from __future__ import annotations

import datetime
import heapq
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from testkit.kafka import Message

Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class Record:
    """One message at its offset in the log; equally, one row of ``kafka_scan``."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    timestamp_type: str = "CreateTime"


#: A topic's (or several topics') log: per ``(topic, partition)`` its records in offset order.
#: Every partition the scan reads has an entry, an empty partition an empty list.
Log = dict[tuple[str, int], list[Record]]


def as_stored(topic: str, partitions: int, messages: Iterable[Message]) -> Log:
    """The log of a fresh, non-transactional topic of ``partitions`` partitions after
    :meth:`testkit.kafka.TopicFactory.produce` of ``messages``: offsets count from 0 in each
    partition, in the order the messages were given."""
    log: Log = {(topic, p): [] for p in range(partitions)}
    for message in messages:
        records = log[(topic, message.partition)]
        records.append(
            Record(
                topic=topic,
                partition=message.partition,
                offset=len(records),
                timestamp_ms=message.timestamp_ms,
                key=message.key,
                value=message.value,
                headers=tuple(message.headers),
            )
        )
    return log


def merge_logs(*logs: Log) -> Log:
    """Several topics' logs as one (a scan of ``'a,b'``)."""
    merged: Log = {}
    for log in logs:
        merged.update(log)
    return merged


def only_partitions(log: Log, partitions: Iterable[int]) -> Log:
    """The partitions numbered ``partitions`` of every topic in ``log`` (``partitions :=``)."""
    wanted = set(partitions)
    return {tp: records for tp, records in log.items() if tp[1] in wanted}


def _first_at_or_after(records: Sequence[Record], timestamp_ms: int | None) -> int:
    """Index of the first record (in offset order) with a timestamp >= ``timestamp_ms``, as
    Kafka's ListOffsets by timestamp finds it; ``len(records)`` when there is none."""
    if timestamp_ms is None:
        return 0
    for index, record in enumerate(records):
        if record.timestamp_ms >= timestamp_ms:
            return index
    return len(records)


def window(log: Log, start_ms: int | None = None, cutoff_ms: int | None = None) -> Log:
    """Each partition cut to what a scan reads: from the first record with a timestamp >=
    ``start_ms`` (all when None) up to, not including, the first with a timestamp >=
    ``cutoff_ms`` (to the end when None). For logs holding only data records (no transaction
    markers, which take offsets and carry the time they were written)."""
    cut: Log = {}
    for tp, records in log.items():
        start = _first_at_or_after(records, start_ms)
        stop = len(records) if cutoff_ms is None else _first_at_or_after(records, cutoff_ms)
        cut[tp] = list(records[start:stop]) if stop > start else []
    return cut


def between(log: Log, starts: Mapping[int, int], stops: Mapping[int, int]) -> Log:
    """Each partition's records with ``starts[partition] <= offset < stops[partition]``."""
    return {
        (topic, partition): [r for r in records if starts[partition] <= r.offset < stops[partition]]
        for (topic, partition), records in log.items()
    }


def tstz(ms: int) -> str:
    """A SQL ``TIMESTAMPTZ`` literal for the epoch milliseconds ``ms`` (in UTC, so the
    session's time zone plays no part)."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return f"TIMESTAMPTZ '{moment.isoformat(sep=' ')}'"


def expected_offsets(
    log: Log, start_ms: int | None = None, cutoff_ms: int | None = None, latest: bool = False
) -> list[tuple[str, int, int, int, int]]:
    """``kafka_offsets`` rows ``(topic, partition, start_offset, stop_offset, messages)`` for a
    non-transactional, uncompacted ``log`` (offsets ``0..n-1``, so the end is ``n``), ordered
    by topic and partition. ``latest`` starts every partition at its end."""
    rows = []
    for (topic, partition), records in sorted(log.items()):
        offsets = [record.offset for record in records]
        assert offsets == list(range(len(records))), f"{topic}/{partition}: offsets with gaps"
        end = len(records)
        start = end if latest else _first_at_or_after(records, start_ms)
        stop = end if cutoff_ms is None else _first_at_or_after(records, cutoff_ms)
        stop = max(start, stop)
        rows.append((topic, partition, start, stop, stop - start))
    return rows


def expected_scan(log: Mapping[tuple[str, int], Sequence[Record]]) -> list[Record]:
    """The order model: every record of ``log`` in the order ``kafka_scan`` returns them.

    Each partition is taken in offset order; repeatedly the head with the smallest
    ``(timestamp, topic, partition, offset)`` among the heads of all non-exhausted partitions is
    emitted. A partition whose timestamps go backwards is never reordered.
    """
    heads: list[tuple[int, str, int, int, int, tuple[str, int]]] = []
    for tp, records in log.items():
        records = list(records)
        offsets = [record.offset for record in records]
        assert offsets == sorted(offsets), f"{tp}: records not in offset order"
        if records:
            first = records[0]
            heads.append((first.timestamp_ms, first.topic, first.partition, first.offset, 0, tp))
    heapq.heapify(heads)
    out: list[Record] = []
    while heads:
        *_, index, tp = heapq.heappop(heads)
        records = log[tp]
        out.append(records[index])
        if index + 1 < len(records):
            head = records[index + 1]
            heapq.heappush(
                heads, (head.timestamp_ms, head.topic, head.partition, head.offset, index + 1, tp)
            )
    return out


_TIMESTAMP_TYPES = {TIMESTAMP_CREATE_TIME: "CreateTime", TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime"}


def read_back(
    brokers: str,
    topics: str | Sequence[str],
    isolation_level: str = "read_committed",
    timeout: float = 60.0,
) -> Log:
    """Everything physically readable in ``topics``, read by confluent-kafka's consumer
    (assigned, never subscribed, nothing committed) from the log start to the end (the last
    stable offset with ``read_committed``)."""
    names = [topics] if isinstance(topics, str) else list(topics)
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            # Required by the client; never used: partitions are assigned, nothing committed.
            "group.id": f"kafkars-testkit-read-back-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": isolation_level,
            "fetch.message.max.bytes": 16 * 1024 * 1024,
        }
    )
    try:
        log: Log = {}
        assignment = []
        for name in names:
            metadata = consumer.list_topics(name, timeout=30).topics[name]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            for partition in sorted(metadata.partitions):
                log[(name, partition)] = []
                assignment.append(TopicPartition(name, partition, OFFSET_BEGINNING))
        consumer.assign(assignment)
        pending = set(log)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading back {names}: no end in {sorted(pending)}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            tp = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(tp)
                    continue
                raise KafkaException(error)
            kind, timestamp_ms = message.timestamp()
            log[tp].append(
                Record(
                    topic=tp[0],
                    partition=tp[1],
                    offset=message.offset(),
                    timestamp_ms=timestamp_ms,
                    key=message.key(),
                    value=message.value(),
                    headers=tuple(message.headers() or ()),
                    timestamp_type=_TIMESTAMP_TYPES[kind],
                )
            )
        return log
    finally:
        consumer.close()


def contents(log: Log) -> dict[tuple[str, int], list[tuple]]:
    """Per partition, what was produced: ``(key, value, timestamp, headers)`` without offsets
    (for checking a read-back against the messages sent)."""
    return {
        tp: [(r.key, r.value, r.timestamp_ms, r.headers) for r in records]
        for tp, records in log.items()
    }


#: The columns of a scan, fetched in a form that compares exactly with :class:`Record`:
#: the timestamp as epoch milliseconds, so the session's time zone plays no part.
SCAN_COLUMNS = (
    'topic, "partition", "offset", epoch_ms("timestamp"), key, value, headers, timestamp_type'
)


def scan_rows(rows: Iterable[tuple]) -> list[Record]:
    """Rows of ``SELECT {SCAN_COLUMNS} FROM kafka_scan(...)`` as records."""
    return [
        Record(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
            key=key,
            value=value,
            headers=tuple((header["key"], header["value"]) for header in headers),
            timestamp_type=timestamp_type,
        )
        for topic, partition, offset, timestamp_ms, key, value, headers, timestamp_type in rows
    ]


#: How long a test lets one query run before it interrupts it and fails (a scan that never
#: finishes must fail the test, not hang it).
QUERY_LIMIT_S = 60.0


def fetch(con: duckdb.DuckDBPyConnection, sql: str, limit_s: float = QUERY_LIMIT_S) -> list[tuple]:
    """``con.sql(sql).fetchall()``, interrupted and failed when it takes over ``limit_s``
    seconds. A query's own error is raised as it is."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["rows"] = con.sql(sql).fetchall()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=run, name="kafkars-test-query", daemon=True)
    worker.start()
    worker.join(limit_s)
    if worker.is_alive():
        con.interrupt()
        worker.join(10)
        raise AssertionError(f"query still running after {limit_s}s (interrupted): {sql}")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["rows"]  # type: ignore[return-value]


def scan(con: duckdb.DuckDBPyConnection, call: str, limit_s: float = QUERY_LIMIT_S) -> list[Record]:
    """The rows of ``SELECT ... FROM <call>`` in the order they come, as records; ``call`` is
    a ``kafka_scan(...)`` invocation."""
    return scan_rows(fetch(con, f"SELECT {SCAN_COLUMNS} FROM {call}", limit_s))


class BackgroundQuery:
    """``con.sql(sql).fetchall()`` running in a thread, for queries that wait for messages
    produced after they started (``kafka_scan(..., follow := true) LIMIT n``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        self.con = con
        self.sql = sql
        self.outcome: dict[str, Any] = {}
        self.finished_at: float | None = None
        self.thread = threading.Thread(target=self._run, name="kafkars-test-follow", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.outcome["rows"] = self.con.sql(self.sql).fetchall()
        except BaseException as error:
            self.outcome["error"] = error
        finally:
            self.finished_at = time.monotonic()

    def running(self) -> bool:
        """Whether the query has not returned yet."""
        return self.thread.is_alive()

    def rows(self, limit_s: float = QUERY_LIMIT_S) -> list[tuple]:
        """The query's rows once it returns; interrupted and failed after ``limit_s`` more
        seconds. A query's own error is raised as it is."""
        self.thread.join(limit_s)
        if self.thread.is_alive():
            self.con.interrupt()
            self.thread.join(10)
            raise AssertionError(f"query still running after {limit_s}s (interrupted): {self.sql}")
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["rows"]

    def records(self, limit_s: float = QUERY_LIMIT_S) -> list[Record]:
        """:meth:`rows` of a ``SELECT {SCAN_COLUMNS} ...`` query, as records."""
        return scan_rows(self.rows(limit_s))


# The streaming API: kafkars.ConsumerManager.

#: The columns of every batch ``ConsumerManager.poll`` returns, as of ``kafka_scan``.
BATCH_COLUMNS = (
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp_type",
    "key",
    "value",
    "headers",
)


def _is_text(data_type: pa.DataType) -> bool:
    """utf8, or a dictionary of utf8 (allowed for ``topic`` and ``timestamp_type``)."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return pa.types.is_string(data_type)


def check_batch_schema(schema: pa.Schema) -> None:
    """Assert that ``schema`` is the documented one (SPEC section 2): the columns of
    :data:`BATCH_COLUMNS` in that order with their Arrow types."""
    assert schema.names == list(BATCH_COLUMNS), schema
    types = {name: schema.field(name).type for name in BATCH_COLUMNS}
    assert _is_text(types["topic"]), schema
    assert types["partition"] == pa.int32(), schema
    assert types["offset"] == pa.int64(), schema
    assert types["timestamp"] == pa.timestamp("ms", tz="UTC"), schema
    assert _is_text(types["timestamp_type"]), schema
    assert types["key"] == pa.binary(), schema
    assert types["value"] == pa.binary(), schema
    headers = types["headers"]
    assert pa.types.is_list(headers), schema
    entry = headers.value_type
    assert pa.types.is_struct(entry), schema
    assert [entry.field(i).name for i in range(entry.num_fields)] == ["key", "value"], schema
    assert entry.field("key").type == pa.utf8(), schema
    assert entry.field("value").type == pa.binary(), schema


def batch_records(batch: pa.RecordBatch) -> list[Record]:
    """The rows of one ``ConsumerManager.poll`` batch as records, after checking its schema."""
    assert isinstance(batch, pa.RecordBatch), type(batch)
    check_batch_schema(batch.schema)
    columns = {name: batch.column(name).to_pylist() for name in BATCH_COLUMNS}
    columns["timestamp"] = batch.column("timestamp").cast(pa.int64()).to_pylist()
    # As in kafka_scan, a message without headers has an empty list, not NULL.
    assert None not in columns["headers"], "NULL headers in a batch"
    # Into the column order of SCAN_COLUMNS, which scan_rows reads.
    return scan_rows(
        (topic, partition, offset, timestamp_ms, key, value, headers, timestamp_type)
        for topic, partition, offset, timestamp_ms, timestamp_type, key, value, headers in zip(
            *(columns[name] for name in BATCH_COLUMNS), strict=True
        )
    )


@dataclass
class Polled:
    """What polling a manager returned so far: the records in the order they came, each
    batch's size, and after each poll how many records had come and whether ``is_live()``
    said True."""

    records: list[Record] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    live_after: list[tuple[int, bool]] = field(default_factory=list)

    def first_live(self) -> int | None:
        """How many records had come when ``is_live()`` first said True (None: never)."""
        return next((count for count, live in self.live_after if live), None)


def by_position(records: Iterable[Record]) -> list[Record]:
    """``records`` sorted by (topic, partition, offset): for comparing rows whose order across
    partitions does not matter."""
    return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))


def check_partition_order(records: Sequence[Record]) -> None:
    """Assert that each partition's records come in offset order, whatever the order across
    partitions (the one order live data always keeps)."""
    for tp in {(r.topic, r.partition) for r in records}:
        offsets = [r.offset for r in records if (r.topic, r.partition) == tp]
        assert offsets == sorted(offsets), tp


def poll_until(
    manager: Any,
    done: Callable[[Polled], bool],
    limit_s: float = QUERY_LIMIT_S,
    timeout_ms: int = 200,
    polled: Polled | None = None,
) -> Polled:
    """Call ``manager.poll(timeout_ms)`` and ``manager.is_live()`` in turn until ``done`` says
    so (checked after each poll); fail after ``limit_s`` seconds. Continues ``polled``."""
    polled = polled if polled is not None else Polled()
    deadline = time.monotonic() + limit_s
    while True:
        batch = manager.poll(timeout_ms=timeout_ms)
        polled.records.extend(batch_records(batch))
        polled.sizes.append(batch.num_rows)
        polled.live_after.append((len(polled.records), manager.is_live()))
        if done(polled):
            return polled
        if time.monotonic() > deadline:
            raise AssertionError(
                f"polling for {limit_s}s did not finish: {len(polled.records)} records, "
                f"live: {polled.live_after[-1][1]}, partitions: {manager.partition_state()}"
            )


def poll_until_live(
    manager: Any,
    limit_s: float = QUERY_LIMIT_S,
    timeout_ms: int = 200,
    polled: Polled | None = None,
) -> Polled:
    """Poll until ``is_live()`` says True after a poll (see :func:`poll_until`)."""
    return poll_until(manager, lambda polled: polled.live_after[-1][1], limit_s, timeout_ms, polled)


def poll_count(
    manager: Any,
    count: int,
    limit_s: float = QUERY_LIMIT_S,
    timeout_ms: int = 200,
    polled: Polled | None = None,
) -> Polled:
    """Poll until at least ``count`` records have come in all (see :func:`poll_until`)."""
    return poll_until(
        manager, lambda polled: len(polled.records) >= count, limit_s, timeout_ms, polled
    )
