"""What ``kafka_scan`` should return: the log's records, the order model, and reading back.

- :class:`Record` is one message as it lies in a partition's log (with its offset), and one row
  of ``kafka_scan`` (:func:`scan`, :func:`scan_rows` turn the rows into records).
- :func:`as_stored` is what producing messages to a fresh topic puts in its log;
  :func:`read_back` is what is physically there, read by confluent-kafka's own consumer.
- :func:`window` cuts each partition to the ``[start, stop)`` of a timestamp start and a cutoff,
  :func:`expected_offsets` gives the matching ``kafka_offsets`` rows.
- :func:`expected_scan` is the order model: the k-way merge of the partitions by
  ``(timestamp, topic, partition, offset)`` of their heads, each partition in offset order.
"""

from __future__ import annotations

import datetime
import heapq
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import duckdb
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
