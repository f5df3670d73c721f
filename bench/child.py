"""One measurement in a fresh process: ``python bench/child.py READER '<json params>'``.

The harness (bench/run.py) starts this script once per run, with the main venv's Python for the
kafkars readers and with ``.venv-bench``'s for the peers, so every reader below imports its
library itself. A reader prints one JSON object: ``messages`` and ``bytes`` (key + value) read,
``seconds`` from the start of the read to its end, ``cpu_seconds`` the process spent over the
same span (every thread), ``baseline_kib`` (the process's resident memory just before the read:
interpreter, imports, connection) and, for the latency readers, ``first_row_seconds``, and
``peak_kib``, the process's VmHWM when the read is over, and ``rss_halves_kib``, the highest
resident memory sampled (every 20 ms) in the first and in the second half of the read: a
reader whose memory is bounded reaches its level early and stays there, so the second half
is no higher than the first. The Avro readers also print
``amount_sum``, the sum of the decoded ``amount`` field, as a decimal string.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

Params = dict[str, Any]
Result = dict[str, Any]

#: How long a reader may go on before it gives up (the harness also enforces its own limit).
DEADLINE_S = 3600.0


def proc_status_kib(field: str, pid: int | str = "self") -> int | None:
    """A field of /proc/<pid>/status in KiB: ``VmRSS`` now, ``VmHWM`` the peak so far; None
    when the process (or the field) is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


#: How often the resident memory is sampled during a read, in seconds.
RSS_SAMPLE_INTERVAL_S = 0.02


class RssSampler:
    """Samples this process's VmRSS every :data:`RSS_SAMPLE_INTERVAL_S` on a daemon thread
    (reading /proc needs no GIL-heavy work, and the readers release the GIL while they read)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(RSS_SAMPLE_INTERVAL_S):
            rss = proc_status_kib("VmRSS")
            if rss is not None:
                self.samples.append((time.perf_counter() - self.started, rss))

    def halves(self, seconds: float) -> list[int | None]:
        """Stop, and return the highest sample of each half of ``seconds``."""
        self.stopped.set()
        self.thread.join()
        middle = seconds / 2
        first = [rss for at, rss in self.samples if at < middle]
        second = [rss for at, rss in self.samples if at >= middle]
        return [max(first, default=None), max(second, default=None)]


def start_pyarrow() -> None:
    """Import pyarrow.compute and allocate once from pyarrow's memory pool, so that the
    baseline includes them: the harness sums payload lengths with pyarrow.compute, and that
    first use costs tens of MiB of resident memory (pyarrow 26's mimalloc pool) whatever the
    reader read."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pc.sum(pc.binary_length(pa.array([b""]))).as_py()


class Clock:
    """Times one read: the baseline memory and start are taken when it is created."""

    def __init__(self) -> None:
        start_pyarrow()
        self.baseline_kib = proc_status_kib("VmRSS")
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.first_row: float | None = None
        self.rss = RssSampler(self.started)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def saw_rows(self, rows: int) -> None:
        """Note the time of the first row."""
        if rows and self.first_row is None:
            self.first_row = self.elapsed()

    def check_deadline(self, what: str) -> None:
        if self.elapsed() > DEADLINE_S:
            raise TimeoutError(f"{what} did not finish within {DEADLINE_S:.0f} s")

    def result(self, messages: int, payload: int | None) -> Result:
        seconds = self.elapsed()
        result: Result = {
            "messages": messages,
            "bytes": payload,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - self.cpu_started,
            "baseline_kib": self.baseline_kib,
            "peak_kib": proc_status_kib("VmHWM"),
            "rss_halves_kib": self.rss.halves(seconds),
        }
        if self.first_row is not None:
            result["first_row_seconds"] = self.first_row
        return result


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scan_call(params: Params) -> str:
    """``kafka_scan(...)`` with the parameters the measurement asks for."""
    arguments = [sql_string(params["topic"]), f"brokers := {sql_string(params['brokers'])}"]
    if params.get("max_buffer_bytes") is not None:
        arguments.append(f"max_buffer_bytes := {int(params['max_buffer_bytes'])}")
    if params.get("ordered") is not None:
        arguments.append(f"ordered := {'true' if params['ordered'] else 'false'}")
    if params.get("lookback_s") is not None:
        arguments.append(f"lookback := INTERVAL {int(params['lookback_s'])} SECOND")
    for name in ("value_format", "schema_registry"):
        if params.get(name) is not None:
            arguments.append(f"{name} := {sql_string(params[name])}")
    return f"kafka_scan({', '.join(arguments)})"


def kafkars_connection() -> Any:
    import kafkars

    con = kafkars.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def batch_payload(batch: Any) -> int:
    """Key + value bytes of an Arrow batch (nulls count 0)."""
    import pyarrow.compute as pc

    total = 0
    for name in ("key", "value"):
        lengths = pc.sum(pc.binary_length(batch.column(name))).as_py()
        total += lengths or 0
    return total


def drain_batches(clock: Clock, batches: Iterable[Any]) -> Result:
    """Count rows and payload of an iterable of Arrow batches."""
    messages = payload = 0
    for batch in batches:
        clock.saw_rows(batch.num_rows)
        messages += batch.num_rows
        payload += batch_payload(batch)
        clock.check_deadline("the read")
    return clock.result(messages, payload)


# --- kafkars ----------------------------------------------------------------------------------


def kafka_scan_count(params: Params) -> Result:
    """The SQL aggregate the issue names: DuckDB counts, no row reaches Python."""
    con = kafkars_connection()
    query = f"SELECT count(*), sum(octet_length(value)) FROM {scan_call(params)}"
    clock = Clock()
    [(messages, payload)] = con.sql(query).fetchall()
    return clock.result(messages, payload or 0)


def kafka_scan_avro(params: Params) -> Result:
    """Avro values decoded by the scan (``value_format := 'avro'``), their ``amount`` summed
    by DuckDB."""
    con = kafkars_connection()
    query = f"SELECT count(*), sum(value.amount) FROM {scan_call(params)}"
    clock = Clock()
    [(messages, amount)] = con.sql(query).fetchall()
    result = clock.result(messages, None)
    result["amount_sum"] = str(amount)
    return result


def kafka_scan_arrow(params: Params) -> Result:
    """Every column of every row as Arrow batches in Python, streamed."""
    con = kafkars_connection()
    clock = Clock()
    reader = con.sql(f"SELECT * FROM {scan_call(params)}").to_arrow_reader(
        batch_size=params.get("batch_size", 10_000)
    )
    return drain_batches(clock, reader)


def duckdb_arrow_alone(params: Params) -> Result:
    """The memory section's reference, with no Kafka at all: DuckDB's Arrow reader over
    ``params["messages"]`` rows that ``range()`` makes in ``kafka_scan``'s schema, each with a
    distinct ``params["size"]``-byte value, through the connection and batch size of
    :func:`kafka_scan_arrow`. What it holds is DuckDB's own: its streaming result and the
    Arrow batches it builds, which no ``max_buffer_bytes`` of ours can bound."""
    messages, size = int(params["messages"]), int(params["size"])
    partitions = int(params["partitions"])
    # A distinct value per row (a counter after filler), so that no row shares another's bytes.
    digits = len(str(max(messages - 1, 0)))
    if size < digits:
        raise ValueError(f"size must be at least {digits} bytes for {messages} rows, got {size}")
    value = f"(repeat('x', {size - digits}) || lpad(i::VARCHAR, {digits}, '0'))::BLOB"
    query = (
        f"SELECT {sql_string(params['topic'])} AS topic, (i % {partitions})::INTEGER AS partition,"
        f' i // {partitions} AS "offset", to_timestamp(i / 1000) AS timestamp,'
        f" 'CreateTime' AS timestamp_type, NULL::BLOB AS key, {value} AS value,"
        f" []::STRUCT(key VARCHAR, value BLOB)[] AS headers FROM range({messages}) AS t(i)"
    )
    con = kafkars_connection()
    clock = Clock()
    reader = con.sql(query).to_arrow_reader(batch_size=params.get("batch_size", 10_000))
    return drain_batches(clock, reader)


def _manager_batches(clock: Clock, manager: Any) -> Iterable[Any]:
    """Poll a manager (kafkars' or kafkarrow's, same interface) until its replay is done."""
    while True:
        batch = manager.poll(timeout_ms=1000)
        yield batch
        if manager.is_live():
            return
        clock.check_deadline("the replay")


def _consumer_manager(params: Params) -> Callable[[], Any]:
    """What creates kafkars' ConsumerManager from earliest (or a lookback) with the
    measurement's options; kafkars is imported here, before the clock starts."""
    from kafkars import ConsumerManager, SourceTopic

    if params.get("lookback_s") is not None:
        source = SourceTopic.from_relative_time(params["topic"], int(params["lookback_s"] * 1000))
    else:
        source = SourceTopic.from_earliest(params["topic"])
    options = {
        key: params[key]
        for key in ("batch_size", "max_buffer_bytes", "value_format", "schema_registry")
        if params.get(key) is not None
    }
    return functools.partial(
        ConsumerManager,
        config={"bootstrap.servers": params["brokers"]},
        topics=[source],
        **options,
    )


def consumer_manager(params: Params) -> Result:
    """kafkars' ConsumerManager from earliest (or a lookback), polled until live."""
    create = _consumer_manager(params)
    clock = Clock()
    with create() as manager:
        return drain_batches(clock, _manager_batches(clock, manager))


def consumer_manager_avro(params: Params) -> Result:
    """kafkars' ConsumerManager decoding Avro values (``value_format="avro"``), polled until
    live, each batch's decoded ``amount`` summed with pyarrow.compute."""
    import pyarrow.compute as pc

    create = _consumer_manager(params)
    clock = Clock()
    messages, amount = 0, Decimal(0)
    with create() as manager:
        for batch in _manager_batches(clock, manager):
            clock.saw_rows(batch.num_rows)
            if batch.num_rows:
                messages += batch.num_rows
                amount += pc.sum(batch.column("value").field("amount")).as_py()
    result = clock.result(messages, None)
    result["amount_sum"] = str(amount)
    return result


# --- peers (run in .venv-bench) -----------------------------------------------------------------


def kafkarrow_manager(params: Params) -> Result:
    """kafkarrow 0.1.1's ConsumerManager (the seed project's engine), polled until live."""
    import kafkarrow

    clock = Clock()
    manager = kafkarrow.ConsumerManager(
        config={"bootstrap.servers": params["brokers"]},
        topics=[kafkarrow.SourceTopic.from_earliest(params["topic"])],
        batch_size=params.get("batch_size"),
    )
    return drain_batches(clock, _manager_batches(clock, manager))


def _end_offsets_confluent(consumer: Any, topic: str) -> dict[int, tuple[int, int]]:
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = sorted(metadata.topics[topic].partitions)
    from confluent_kafka import TopicPartition

    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions
    }


def _confluent_batches(params: Params) -> Callable[[Clock], Iterator[list[Any]]]:
    """A read with confluent-kafka's ``consume(num_messages=10000)`` in a loop over every
    partition of the topic, assigned from its low watermark (no group joined, nothing
    committed), until each reached its high watermark; it yields the messages of each call,
    errors and EOF events left out. confluent-kafka is imported here, before the clock starts;
    the consumer is created when the read starts."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    def read(clock: Clock) -> Iterator[list[Any]]:
        topic = params["topic"]
        consumer = Consumer(
            {
                "bootstrap.servers": params["brokers"],
                "group.id": "kafkars-bench",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        ranges = _end_offsets_confluent(consumer, topic)
        remaining = {p for p, (low, high) in ranges.items() if high > low}
        consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in remaining])
        while remaining:
            batch = consumer.consume(num_messages=10_000, timeout=1.0)
            rows = []
            for message in batch:
                error = message.error()
                if error is None:
                    rows.append(message)
                    if message.offset() + 1 >= ranges[message.partition()][1]:
                        remaining.discard(message.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    if message.offset() >= ranges[message.partition()][1]:
                        remaining.discard(message.partition())
                else:
                    raise RuntimeError(f"{topic}[{message.partition()}]: {error}")
            if rows:
                yield rows
            clock.check_deadline("the read")
        consumer.close()

    return read


def confluent_arrow(params: Params) -> Result:
    """confluent-kafka's ``consume(num_messages=10000)`` in a loop, each batch made a
    ``pyarrow.Table`` in the kafkarrow schema."""
    import pyarrow as pa

    read = _confluent_batches(params)
    clock = Clock()
    messages = payload = 0
    for rows in read(clock):
        table = pa.table(
            {
                "key": pa.array([m.key() for m in rows], pa.binary()),
                "value": pa.array([m.value() for m in rows], pa.binary()),
                "topic": pa.array([m.topic() for m in rows], pa.string()),
                "partition": pa.array([m.partition() for m in rows], pa.int32()),
                "offset": pa.array([m.offset() for m in rows], pa.int64()),
                "timestamp": pa.array(
                    [m.timestamp()[1] for m in rows], pa.timestamp("ms", tz="UTC")
                ),
            }
        )
        clock.saw_rows(table.num_rows)
        messages += table.num_rows
        payload += batch_payload(table)
    return clock.result(messages, payload)


def confluent_avro(params: Params) -> Result:
    """The Avro peer: confluent-kafka's ``consume(num_messages=10000)`` in a loop, each value
    through its ``AvroDeserializer`` (the writer schema from the registry), each batch made a
    ``pyarrow.Table`` of the decoded records with ``Table.from_pylist`` and its ``amount``
    summed with pyarrow.compute."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    # The record's Arrow schema, as a user who knows the data would give it (inferring it from
    # the dicts would be slower): the Avro set's Order record (bench/data.py).
    schema = pa.schema(
        [
            ("order_id", pa.int64()),
            ("user", pa.string()),
            ("amount", pa.decimal128(12, 2)),
            ("quantity", pa.int32()),
            ("price", pa.float64()),
            ("created", pa.timestamp("ms", tz="UTC")),
            ("country", pa.string()),
            ("flag", pa.bool_()),
        ]
    )
    read = _confluent_batches(params)
    clock = Clock()
    # The TOPIC strategy and a timeout: see bench/data.py.
    deserialize = AvroDeserializer(
        SchemaRegistryClient({"url": params["schema_registry"], "timeout": 10}),
        conf={"subject.name.strategy.type": "TOPIC"},
    )
    context = SerializationContext(params["topic"], MessageField.VALUE)
    messages, amount = 0, Decimal(0)
    for rows in read(clock):
        table = pa.Table.from_pylist([deserialize(m.value(), context) for m in rows], schema=schema)
        clock.saw_rows(table.num_rows)
        messages += table.num_rows
        amount += pc.sum(table["amount"]).as_py()
    result = clock.result(messages, None)
    result["amount_sum"] = str(amount)
    return result


def kafka_python(params: Params) -> Result:
    """kafka-python's KafkaConsumer, partitions assigned from the beginning, polled until every
    partition reached its end offset."""
    from kafka import KafkaConsumer, TopicPartition

    topic = params["topic"]
    clock = Clock()
    consumer = KafkaConsumer(
        bootstrap_servers=params["brokers"],
        enable_auto_commit=False,
        allow_auto_create_topics=False,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    remaining = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
    messages = payload = 0
    while remaining:
        for tp, records in consumer.poll(timeout_ms=1000).items():
            clock.saw_rows(len(records))
            messages += len(records)
            payload += sum(len(r.value or b"") + len(r.key or b"") for r in records)
            if records[-1].offset + 1 >= ends[tp]:
                remaining.discard(tp)
        clock.check_deadline("the read")
    consumer.close()
    return clock.result(messages, payload)


def versions(params: Params) -> Result:
    """Versions of the named distributions in this venv, and of Python."""
    from importlib import metadata

    found: Result = {"python": sys.version.split()[0]}
    for name in params["packages"]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    if "confluent-kafka" in params["packages"] and found["confluent-kafka"]:
        import confluent_kafka

        found["librdkafka (confluent-kafka)"] = confluent_kafka.libversion()[0]
    return found


READERS: dict[str, Callable[[Params], Result]] = {
    "kafka_scan_count": kafka_scan_count,
    "kafka_scan_avro": kafka_scan_avro,
    "kafka_scan_arrow": kafka_scan_arrow,
    "duckdb_arrow_alone": duckdb_arrow_alone,
    "consumer_manager": consumer_manager,
    "consumer_manager_avro": consumer_manager_avro,
    "kafkarrow_manager": kafkarrow_manager,
    "confluent_arrow": confluent_arrow,
    "confluent_avro": confluent_avro,
    "kafka_python": kafka_python,
    "versions": versions,
}


def main() -> int:
    name, params = sys.argv[1], json.loads(sys.argv[2])
    try:
        result = READERS[name](params)
    except Exception as error:  # reported to the harness, which records the reader as failed
        # The first line names the error; DuckDB adds the query and a caret below it.
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(json.dumps({"error": f"{type(error).__name__}: {first}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
