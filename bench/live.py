"""The two processes of a live measurement: a paced producer and a following reader.

    python bench/live.py produce '<json params>'
    python bench/live.py follow '<json params>'

The harness (bench/run.py, its ``live`` and ``soak`` sections) creates a fresh topic, starts
``follow`` (kafkars' ``ConsumerManager`` or ``kafka_scan(..., follow := true)`` through DuckDB's
Arrow reader) and waits for its ``{"ready": true}`` line, then runs ``produce`` for a fixed time
at a fixed rate, each message's CreateTime set to the wall clock (ms) when it is handed to the
producer. When the producer is done it prints the offsets the broker acknowledged, which the
harness writes to the reader's stdin as ``{"ends": {partition: end offset}}``; the reader stops
once it has seen every partition up to its end (or a grace time later) and prints one JSON object.

The producer first warms up for ``warmup_s`` seconds at the same rate, its messages keyed
``warmup``: on a fresh topic the first second's messages take hundreds of ms to reach any
consumer, librdkafka's own included (connections, the partitions' first writes and fetches), which
is the set-up's start, not the reader's steady state. Warm-up rows are checked like the others
but left out of the latency figures.

Latency per row = the wall clock (ms, ``time.time()``) when the batch holding the row was
returned to Python - the row's timestamp. Producer and reader run on the same machine, on the
same clock. Latencies are counted in 1-ms bins (percentiles are the bin's lower edge), per minute
since the first row, in arrays allocated (and touched) before the reader reports ready, so the
figures cost no memory while the reader runs: the soak measures the reader's RSS.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# bench/ is not a package, and testkit lives at the repository's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testkit.kafka import produce_paced

Params = dict[str, Any]

#: Latencies from 0 to this (ms) get a bin each; longer ones share the last bin (``max`` is
#: exact).
HISTOGRAM_MS = 30_000
#: The reader stops this long (s) after learning the ends if it has not reached them.
DEFAULT_GRACE_S = 20.0
#: The key of the producer's warm-up messages (the measured ones have none).
WARMUP_KEY = b"warmup"


def now_ms() -> float:
    """The wall clock in epoch milliseconds (fractional)."""
    return time.time() * 1000.0


# --- the producer --------------------------------------------------------------------------------


def produce(params: Params) -> dict[str, Any]:
    """Produce ``rate`` messages/s of ``size`` bytes for ``warmup_s`` + ``seconds`` s,
    round-robin over the partitions of ``topic`` except those in ``silent``, each stamped with
    its send time (ms); those of the first ``warmup_s`` s keyed :data:`WARMUP_KEY`, the others
    without a key (testkit's paced producer: a slow moment is caught up with a short burst).
    Returns the achieved rate and, per partition, the end offset (last acknowledged + 1), the
    count and whether the acknowledged offsets are dense (count = end - first): then the
    reader must have seen exactly the offsets below each end.
    """
    rate, seconds = float(params["rate"]), float(params["seconds"])
    partitions = int(params["partitions"])
    silent = set(params.get("silent", ()))
    warmup = int(rate * float(params.get("warmup_s", 0)))
    cpu_started = time.process_time()
    started_ms = now_ms() + warmup / rate * 1000
    production = produce_paced(
        params["brokers"],
        params["topic"],
        rate=rate,
        total=warmup + int(rate * seconds),
        partitions=[p for p in range(partitions) if p not in silent],
        partition_count=partitions,
        value=os.urandom(int(params.get("size", 100))),
        key_for=lambda i: WARMUP_KEY if i < warmup else None,
        linger_ms=int(params.get("linger_ms", 0)),
    )
    return {
        # When the measured messages began (after the warm-up), epoch ms.
        "started_ms": started_ms,
        "sending_seconds": production.seconds,
        "sent": production.sent,
        "warmup": warmup,
        "rate": production.rate,
        "undelivered": production.undelivered,
        "errors": len(production.errors),
        "first_error": production.errors[0] if production.errors else None,
        "ends": dict(enumerate(production.ends)),
        "counts": dict(enumerate(production.counts)),
        "dense": production.dense,
        "cpu_seconds": time.process_time() - cpu_started,
    }


# --- the reader ----------------------------------------------------------------------------------


@dataclass
class Offsets:
    """The offsets one partition delivered, checked against ``0, 1, 2, ...`` in bounded memory.

    In the normal case each batch continues where the last one stopped (``next``). A jump
    forward leaves a gap (offsets not seen yet); an offset below ``next`` fills a gap (it came
    out of offset order) or is a repeat.
    """

    next: int = 0
    rows: int = 0
    repeated: int = 0
    out_of_order: int = 0
    #: Offsets skipped so far, as [low, high) ranges.
    gaps: list[list[int]] = field(default_factory=list)

    def add(self, offsets: np.ndarray) -> None:
        self.rows += len(offsets)
        if offsets[0] == self.next and (len(offsets) == 1 or bool(np.all(np.diff(offsets) == 1))):
            self.next = int(offsets[-1]) + 1
            return
        for offset in offsets.tolist():
            self._add_one(offset)

    def _add_one(self, offset: int) -> None:
        if offset == self.next:
            self.next += 1
        elif offset > self.next:
            self.gaps.append([self.next, offset])
            self.next = offset + 1
        else:
            for i, (low, high) in enumerate(self.gaps):
                if low <= offset < high:
                    self.out_of_order += 1
                    pieces = [[low, offset], [offset + 1, high]]
                    self.gaps[i : i + 1] = [piece for piece in pieces if piece[0] < piece[1]]
                    return
            self.repeated += 1

    def summary(self, end: int) -> dict[str, int]:
        """The counts against ``end``, the offset after the last one produced."""
        lost = max(0, end - self.next) + sum(
            min(high, end) - low for low, high in self.gaps if low < end
        )
        unique = self.rows - self.repeated
        return {
            "rows": self.rows,
            "end": end,
            "lost": lost,
            "repeated": self.repeated,
            "out_of_order": self.out_of_order,
            # Offsets at or past the end: nothing was produced there.
            "unexpected": unique - (end - lost),
        }


class Latencies:
    """Per-minute 1-ms histograms of latencies, allocated up front."""

    def __init__(self, minutes: int) -> None:
        self.bins = np.empty((minutes, HISTOGRAM_MS + 1), dtype=np.int64)
        # Touch every page now: calloc'd zeros would become resident as the bins fill.
        self.bins.fill(0)
        self.max_ms = [0.0] * minutes
        #: The worst latency of each second since the first row: where the tail comes from
        #: (a stall every few seconds shows as a period here).
        self.max_ms_per_second = [0.0] * (minutes * 60)
        self.first_row_ms: float | None = None

    def add(self, returned_ms: float, timestamps_ms: np.ndarray) -> None:
        """Count the latencies of rows stamped ``timestamps_ms``, returned at ``returned_ms``;
        minutes count from the first row counted."""
        if not len(timestamps_ms):
            return
        if self.first_row_ms is None:
            self.first_row_ms = returned_ms
        since = returned_ms - self.first_row_ms
        minute = min(int(since / 60_000), len(self.max_ms) - 1)
        second = min(int(since / 1000), len(self.max_ms_per_second) - 1)
        latency = returned_ms - timestamps_ms
        worst = float(latency.max())
        self.max_ms[minute] = max(self.max_ms[minute], worst)
        self.max_ms_per_second[second] = max(self.max_ms_per_second[second], worst)
        # Producer and reader share the clock: a negative latency is the timestamp's rounding.
        index = np.clip(latency, 0, HISTOGRAM_MS).astype(np.int64)
        self.bins[minute] += np.bincount(index, minlength=HISTOGRAM_MS + 1)

    @staticmethod
    def _stats(bins: np.ndarray, max_ms: float) -> dict[str, Any]:
        rows = int(bins.sum())
        if not rows:
            return {"rows": 0}
        cumulative = np.cumsum(bins)

        def percentile(q: float) -> int:
            return int(np.searchsorted(cumulative, q * rows))

        return {
            "rows": rows,
            "p50_ms": percentile(0.50),
            "p90_ms": percentile(0.90),
            "p99_ms": percentile(0.99),
            "max_ms": round(max_ms, 1),
        }

    def summary(self) -> dict[str, Any]:
        used = [m for m in range(len(self.max_ms)) if self.bins[m].any()]
        overall = self._stats(self.bins.sum(axis=0), max(self.max_ms))
        overall["per_minute"] = [
            {"minute": m, **self._stats(self.bins[m], self.max_ms[m])} for m in used
        ]
        seconds = len(used) * 60 if used else 0
        overall["max_ms_per_second"] = [round(m, 1) for m in self.max_ms_per_second[:seconds]]
        return overall


def timestamps_ms(column: Any) -> np.ndarray:
    """An Arrow timestamp column as epoch milliseconds (int64); DuckDB hands out µs."""
    import pyarrow as pa

    divisor = {"s": 1 / 1000, "ms": 1, "us": 1000, "ns": 1_000_000}[column.type.unit]
    values = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return values // divisor if divisor >= 1 else values * 1000


class Follower:
    """What a following reader saw; thread-safe, since a watchdog may report it."""

    def __init__(self, partitions: int, minutes: int) -> None:
        self.lock = threading.Lock()
        self.offsets = [Offsets() for _ in range(partitions)]
        self.latencies = Latencies(minutes)
        self.ends: dict[int, int] | None = None
        self.batches = 0
        self.cpu_started = time.process_time()
        #: CPU seconds spent in :meth:`record`: the measuring, not the reading.
        self.measuring_cpu = 0.0
        #: Rows of the producer's warm-up: checked, not timed.
        self.warmup_rows = 0

    def record(self, batch: Any) -> None:
        """Note a batch that was just returned."""
        returned = now_ms()
        if not batch.num_rows:
            return
        started = time.thread_time()
        with self.lock:
            self._record(returned, batch)
            self.measuring_cpu += time.thread_time() - started

    def _record(self, returned: float, batch: Any) -> None:
        self.batches += 1
        measured = batch.column("key").is_null().to_numpy(zero_copy_only=False)
        self.warmup_rows += int(len(measured) - measured.sum())
        self.latencies.add(returned, timestamps_ms(batch.column("timestamp"))[measured])
        partitions = batch.column("partition").to_numpy(zero_copy_only=False)
        offsets = batch.column("offset").to_numpy(zero_copy_only=False)
        for partition in np.unique(partitions).tolist():
            while partition >= len(self.offsets):
                self.offsets.append(Offsets())
            self.offsets[partition].add(offsets[partitions == partition])

    def done(self) -> bool:
        with self.lock:
            return self.ends is not None and all(
                self.offsets[p].next >= end for p, end in self.ends.items()
            )

    def result(self, timed_out: bool) -> dict[str, Any]:
        with self.lock:
            ends = self.ends or {}
            partitions = {
                p: self.offsets[p].summary(ends.get(p, 0)) for p in range(len(self.offsets))
            }
            totals = {
                key: sum(part[key] for part in partitions.values())
                for key in ("rows", "lost", "repeated", "out_of_order", "unexpected")
            }
            process_cpu = time.process_time() - self.cpu_started
            return {
                **totals,
                "produced": sum(ends.values()),
                "warmup_rows": self.warmup_rows,
                "timed_out": timed_out,
                "batches": self.batches,
                # The reader's CPU time: the process's, less what noting the rows took.
                "cpu_seconds": process_cpu - self.measuring_cpu,
                "measuring_cpu_seconds": self.measuring_cpu,
                "latency": self.latencies.summary(),
                "partitions": partitions,
            }


def report(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def follow(params: Params) -> None:
    """Follow ``topic`` from its first message with ``reader`` until the harness's ends are
    reached (or ``grace_s`` after it sent them), then print what was seen and leave.

    The process leaves with ``os._exit``: a followed ``kafka_scan`` never ends by itself, and
    DuckDB would wait on it when the connection is closed."""
    follower = Follower(int(params["partitions"]), int(params.get("minutes", 2)))
    grace_s = float(params.get("grace_s", DEFAULT_GRACE_S))
    batches = open_reader(params)

    def listen() -> None:
        # The harness writes the ends once the producer is done, then closes stdin.
        line = sys.stdin.readline()
        ends = {int(p): int(end) for p, end in json.loads(line)["ends"].items()}
        with follower.lock:
            follower.ends = ends
        time.sleep(grace_s)
        report(follower.result(timed_out=True))
        os._exit(0)

    threading.Thread(target=listen, daemon=True).start()
    report({"ready": True, "pid": os.getpid()})
    for batch in batches:
        follower.record(batch)
        if follower.done():
            break
    report(follower.result(timed_out=False))
    os._exit(0)


def open_reader(params: Params) -> Any:
    """An iterator of Arrow batches following ``topic``, set up: the manager is created and
    live; the scan's connection is open, its query starts at the first ``next()``."""
    reader = params["reader"]
    if reader == "consumer_manager":
        return _manager_batches(params)
    if reader == "kafka_scan":
        return _scan_batches(params)
    if reader == "confluent":
        return _confluent_batches(params)
    raise ValueError(f"unknown reader {reader!r}")


def _manager_batches(params: Params) -> Any:
    from kafkars import ConsumerManager, SourceTopic

    options = {}
    if params.get("idle_timeout_ms") is not None:
        options["idle_timeout_ms"] = int(params["idle_timeout_ms"])
    manager = ConsumerManager(
        config={"bootstrap.servers": params["brokers"]},
        topics=[SourceTopic.from_earliest(params["topic"])],
        **options,
    )
    # An empty topic: the replay is over at once. The first poll starts the fetchers.
    manager.poll(timeout_ms=100)
    if not manager.is_live():
        raise RuntimeError(f"{params['topic']} is not empty: the manager did not go live")
    timeout_ms = int(params.get("poll_timeout_ms", 100))

    def batches() -> Any:
        while True:
            yield manager.poll(timeout_ms=timeout_ms)

    return batches()


def _confluent_batches(params: Params) -> Any:
    """The reference: confluent-kafka's consumer (librdkafka, no merge), every partition
    assigned from offset 0: ``poll(0.1)`` for the next message, then ``consume(timeout=0)``
    for those already queued (``consume`` with a timeout waits for its whole batch), each
    round made a small Arrow batch of the columns the measurement reads. What remains of the
    latency is the producer's, the broker's and librdkafka's."""
    import pyarrow as pa
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": params["brokers"],
            "group.id": "kafkars-bench-live",
            "enable.auto.commit": False,
        }
    )
    topic = params["topic"]
    consumer.assign([TopicPartition(topic, p, 0) for p in range(int(params["partitions"]))])
    consumer.consume(num_messages=1, timeout=0.1)

    def batches() -> Any:
        while True:
            first = consumer.poll(0.1)
            if first is None:
                continue
            messages = [first, *consumer.consume(num_messages=10_000, timeout=0)]
            if any(m.error() for m in messages):
                raise RuntimeError(next(str(m.error()) for m in messages if m.error()))
            yield pa.record_batch(
                {
                    "key": pa.array([m.key() for m in messages], pa.binary()),
                    "partition": pa.array([m.partition() for m in messages], pa.int32()),
                    "offset": pa.array([m.offset() for m in messages], pa.int64()),
                    "timestamp": pa.array(
                        [m.timestamp()[1] for m in messages], pa.timestamp("ms", tz="UTC")
                    ),
                }
            )

    return batches()


def _scan_batches(params: Params) -> Any:
    import kafkars

    con = kafkars.connect()
    con.execute("SET enable_progress_bar = false")
    topic = params["topic"].replace("'", "''")
    brokers = params["brokers"].replace("'", "''")
    arguments = [f"'{topic}'", f"brokers := '{brokers}'", "follow := true"]
    if params.get("idle_timeout_ms") is not None:
        arguments.append(f"idle_timeout := INTERVAL {int(params['idle_timeout_ms'])} MILLISECOND")
    if params.get("streaming_buffer_size") is not None:
        con.execute(f"SET streaming_buffer_size = '{params['streaming_buffer_size']}'")
    query = f"SELECT * FROM kafka_scan({', '.join(arguments)})"
    batch_size = int(params.get("batch_size", 1))

    def batches() -> Any:
        # to_arrow_reader runs the query until its first rows exist (on an empty topic: until
        # the first message), so the query starts here, at the first next(), after the
        # reader said it is ready. DuckDB's reader hands out a batch once batch_size rows are
        # there (and its streaming buffer is full): one row never waits for rows not written.
        yield from con.sql(query).to_arrow_reader(batch_size=batch_size)

    return batches()


def main() -> int:
    command, params = sys.argv[1], json.loads(sys.argv[2])
    try:
        if command == "produce":
            report(produce(params))
        elif command == "follow":
            follow(params)
        else:
            raise ValueError(f"unknown command {command!r}: expected produce or follow")
    except Exception as error:  # reported to the harness, which records a failure
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        report({"error": f"{type(error).__name__}: {first}"})
        sys.stdout.flush()
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
