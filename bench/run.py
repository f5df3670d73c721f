"""The kafkars benchmarks against the physical limit and the peers: ``make bench``.

    .venv-bench/bin/python bench/run.py [--quick] [--runs N] [--readers a,b] [--sections ...]

Produces the datasets the sections need once (bench/data.py), then runs every reader of
:data:`READERS` on every throughput dataset, each run in a fresh process, and takes the median
of the runs; then the same 2M x 100 B over 1,000 partitions; the memory measurements
(``max_buffer_bytes`` = 64 MiB and 256 MiB on the skewed sets), the first-row latency of a
``relative`` start, the latency of following a live topic (bench/live.py: a paced producer and
a following reader, each its own process), a soak of following 20,000 msgs/s, and the Avro
decoding readers of :data:`AVRO_READERS` on the Avro set (its schema in the Schema Registry).
Writes ``bench/results/<date>[-quick].{json,md,png}`` and prints the Markdown tables, every
throughput figure as a ratio to the limit, every Avro figure as ratios to the Avro peer and to
the raw scan, and a PASS/MISS line per target.

Payload is key + value bytes; MB is 10^6 bytes; RSS figures are MiB; CPU figures are seconds of
user + system time. The kafkars readers run in the main venv (``.venv``, where ``make build``
installs kafkars), the peers in ``.venv-bench``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/ is not a package: the harness runs as a script and imports its neighbours.
import report
from child import proc_status_kib
from data import ORDER_SCHEMA, REGISTRY_URL, Broker, Dataset, datasets
from report import MIB

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "bench" / "child.py"
RAY_CHILD = ROOT / "bench" / "ray_child.py"
LIVE = ROOT / "bench" / "live.py"
LIMIT = ROOT / "target" / "release" / "kafkars-limit"
#: The budgets of the memory targets: a small one, and the default (256 MiB).
MEMORY_BUDGETS = (64 * MIB, 256 * MIB)
#: Fresh messages appended to the 100-byte set before each latency run.
FRESH_MESSAGES = 1000
LOOKBACK_S = 60

MAIN = "main venv"
BENCH = ".venv-bench"
RUST = "rust"
KCAT = "kcat"


@dataclass(frozen=True)
class Reader:
    """One way of reading a topic to its end: where it runs and with what."""

    key: str
    label: str
    runtime: str
    #: The function of bench/child.py (Python readers).
    child: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: Decodes the Avro set's values: it is given the registry and must report ``amount_sum``.
    decodes: bool = False


READERS: tuple[Reader, ...] = (
    Reader("limit", "limit: librdkafka batch consume, count only", RUST),
    Reader("kafka_scan", "kafka_scan -> DuckDB count(*)", MAIN, "kafka_scan_count"),
    Reader("kafka_scan_arrow", "kafka_scan -> Arrow reader (SELECT *)", MAIN, "kafka_scan_arrow"),
    Reader("consumer_manager", "kafkars ConsumerManager", MAIN, "consumer_manager"),
    Reader(
        "kafka_scan_unordered",
        "kafka_scan ordered := false -> count(*)",
        MAIN,
        "kafka_scan_count",
        {"ordered": False},
    ),
    Reader("kafkarrow", "kafkarrow 0.1.1, default batch", BENCH, "kafkarrow_manager"),
    Reader(
        "kafkarrow_100k",
        "kafkarrow 0.1.1, batch_size=100_000",
        BENCH,
        "kafkarrow_manager",
        {"batch_size": 100_000},
    ),
    Reader("confluent_arrow", "confluent-kafka consume(10000) + pyarrow", BENCH, "confluent_arrow"),
    Reader("kafka_python", "kafka-python", BENCH, "kafka_python"),
    Reader("kcat", "kcat -C -e -o beginning -q > /dev/null", KCAT),
)
#: The Avro decoding readers, on the Avro set: our raw-bytes scan of the same topic (the
#: reference of the decoded/raw target) and the ConsumerManager's raw read (for comparison), our
#: two decoding front ends, and the peer, confluent-kafka's AvroDeserializer.
AVRO_READERS: tuple[Reader, ...] = (
    Reader(
        "kafka_scan_raw",
        "kafka_scan raw bytes -> count(*), sum(octet_length(value))",
        MAIN,
        "kafka_scan_count",
    ),
    Reader("consumer_manager_raw", "ConsumerManager raw bytes", MAIN, "consumer_manager"),
    Reader(
        "kafka_scan_avro",
        "kafka_scan value_format := 'avro' -> count(*), sum(value.amount)",
        MAIN,
        "kafka_scan_avro",
        {"value_format": "avro"},
        decodes=True,
    ),
    Reader(
        "consumer_manager_avro",
        "ConsumerManager value_format='avro', pc.sum of value.amount",
        MAIN,
        "consumer_manager_avro",
        {"value_format": "avro"},
        decodes=True,
    ),
    Reader(
        "confluent_avro",
        "confluent-kafka consume(10000) + AvroDeserializer + Table.from_pylist",
        BENCH,
        "confluent_avro",
        decodes=True,
    ),
)
READER_BY_KEY = {reader.key: reader for reader in READERS}
AVRO_READER_BY_KEY = {reader.key: reader for reader in AVRO_READERS}
#: The Avro section's references: the peer and our raw-bytes scan of the same topic.
AVRO_PEER, AVRO_RAW = "confluent_avro", "kafka_scan_raw"

#: The readers of the memory targets, each at every budget on both skewed sets: every way
#: kafkars reads.
MEMORY_READERS = ("kafka_scan", "kafka_scan_arrow", "consumer_manager", "kafka_scan_unordered")
MEMORY_DATASETS = ("skew", "skew-10x")
#: The memory section's reference, once per set: DuckDB's Arrow reader over the same rows made
#: by ``range()``, no Kafka, no budget. What the Arrow reader's figure owes to DuckDB itself.
MEMORY_REFERENCE = Reader(
    "duckdb_arrow_alone",
    "DuckDB alone, no Kafka: range() rows like kafka_scan's -> Arrow reader",
    MAIN,
    "duckdb_arrow_alone",
)
#: The readers compared on 8 and on 1,000 partitions (the 100-byte set's messages).
PARTITION_READERS = (
    "limit",
    "kafka_scan",
    "kafka_scan_unordered",
    "kafka_scan_arrow",
    "consumer_manager",
)
PARTITION_DATASETS = ("100b", "100b-1000p")
#: Readers timed to their first row from a ``relative`` start, with their extra parameters.
LATENCY_READERS = (
    ("kafka_scan_arrow", {"lookback_s": LOOKBACK_S, "batch_size": 1}),
    ("consumer_manager", {"lookback_s": LOOKBACK_S}),
)
THROUGHPUT_DATASETS = ("100b", "1kb", "skew")
SECTIONS = ("throughput", "partitions", "memory", "latency", "live", "soak", "avro", "ray")
#: The datasets (roles) each section reads: only those of the chosen sections are produced.
#: The live and soak sections produce their own fresh topics as they go.
SECTION_DATASETS = {
    "throughput": THROUGHPUT_DATASETS,
    "partitions": PARTITION_DATASETS,
    "memory": MEMORY_DATASETS,
    "latency": ("100b",),
    "live": (),
    "soak": (),
    "avro": ("avro",),
    "ray": ("ray",),
}


@dataclass(frozen=True)
class LiveConfig:
    """One shape of live traffic: which partitions of the fresh topic stay silent, and the
    p99 latency (ms) that must not be reached."""

    key: str
    label: str
    silent: tuple[int, ...]
    p99_target_ms: float


#: The live section: ``LIVE_RATE`` msgs/s of ``LIVE_SIZE`` bytes over ``LIVE_PARTITIONS``
#: partitions for ``LIVE_SECONDS`` s (quick: ``LIVE_QUICK_SECONDS``), sent one by one
#: (``linger.ms=0``).
LIVE_RATE, LIVE_SIZE, LIVE_PARTITIONS = 1000, 100, 8
LIVE_SECONDS, LIVE_QUICK_SECONDS = 60, 10
#: kafkars' default ``idle_timeout``: how long a silent partition may hold the merge back (ms).
IDLE_TIMEOUT_MS = 1000
LIVE_CONFIGS = (
    LiveConfig("all", f"all {LIVE_PARTITIONS} partitions receive data", (), 50),
    LiveConfig(
        "silent",
        f"partition {LIVE_PARTITIONS - 1} of {LIVE_PARTITIONS} stays silent",
        (LIVE_PARTITIONS - 1,),
        IDLE_TIMEOUT_MS + 50,
    ),
)
#: The live reader that only shows the set-up's floor.
LIVE_REFERENCE = "confluent_kafka"
#: The live readers: (key, label, bench/live.py's reader parameters). The first is the
#: soak's reader.
LIVE_READERS = (
    (
        "consumer_manager",
        "ConsumerManager(from_earliest).poll(timeout_ms=100)",
        {"reader": "consumer_manager", "poll_timeout_ms": 100},
    ),
    (
        "kafka_scan",
        "kafka_scan(follow := true) -> Arrow reader, batch_size=1",
        {"reader": "kafka_scan", "batch_size": 1},
    ),
    # The floor of this set-up: librdkafka's own consumer, no merge, no DuckDB. A reference,
    # without targets.
    (
        LIVE_REFERENCE,
        "reference: confluent-kafka poll(0.1) + consume(timeout=0), assigned, no merge",
        {"reader": "confluent"},
    ),
)
#: The soak: ConsumerManager following ``SOAK_RATE`` msgs/s of ``SOAK_SIZE`` bytes over
#: ``SOAK_PARTITIONS`` partitions for ``SOAK_SECONDS`` s (quick: ``SOAK_QUICK_SECONDS``); the
#: producer batches for ``SOAK_LINGER_MS`` ms so that one Python process can send that much.
SOAK_RATE, SOAK_SIZE, SOAK_PARTITIONS, SOAK_LINGER_MS = 20_000, 100, 8, 5
SOAK_SECONDS, SOAK_QUICK_SECONDS = 600, 120
#: How often the reader's RSS is sampled (s): during the soak, and during a live window.
SOAK_RSS_EVERY_S, LIVE_RSS_EVERY_S = 2.0, 1.0
#: Between the reader's ready line and the producer's start (s): the reader's fetch
#: requests are then waiting at the broker, as a live reader's are.
SETTLE_S = 1.0
#: The producer's warm-up before the measured messages (s): on a fresh topic the first
#: second's messages reach every reader, librdkafka's own consumer included, hundreds of ms
#: late. Its rows are checked for loss, not timed.
WARMUP_S = 2.0
#: How long a reader may take to be ready, and to reach the ends once it knows them (s).
READY_TIMEOUT_S, GRACE_S = 60.0, 20.0
#: The Ray section's readers, (key, label, ray_child.py's reader), each in the main venv
#: (Ray is there, for kafkars.ray's tests), and the operations timed.
RAY_READERS = (
    ("kafkars_ray", "kafkars.ray.read_kafka", "kafkars"),
    ("ray_read_kafka", "ray.data.read_kafka (Ray's own)", "ray"),
)
RAY_OPS = (
    ("count", "ds.count()"),
    ("map", 'ds.map_batches(identity, batch_format="pyarrow").materialize()'),
)


@dataclass
class Options:
    brokers: str
    runs: int
    run_timeout: float
    main_python: Path
    bench_python: Path
    #: The Schema Registry's Confluent-compatible API, for the Avro readers.
    registry: str = REGISTRY_URL
    #: The limit program (``cargo build --release -p kafkars-bench-limit``).
    limit: Path = LIMIT


@dataclass
class Process:
    """What one child process left: its output, exit status, peak RSS and CPU time."""

    stdout: str
    stderr: str
    returncode: int
    #: The child's VmHWM as last sampled before it exited (KiB), None if never sampled.
    sampled_peak_kib: int | None
    wall_seconds: float
    #: User + system CPU seconds of the whole process (every thread), from ``wait4``.
    cpu_seconds: float


def run_process(argv: Sequence[str], timeout: float, keep_stdout: bool = True) -> Process:
    """Run ``argv``, sampling its peak RSS every 20 ms; kill it after ``timeout`` seconds.

    The child is reaped with ``wait4``, whose resource usage gives its CPU time (the only
    figure for the readers that are not our Python: the limit program and kcat). Not its
    ``ru_maxrss``: Linux carries the parent's high-water mark into a forked child across
    ``exec``, so a child of this (large) process would report this one's peak. The readers
    also report their own VmHWM at the end, which is preferred where present.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, stdout=out if keep_stdout else subprocess.DEVNULL, stderr=err, cwd=ROOT
        )
        peak: int | None = None
        timed_out = False
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = proc_status_kib("VmHWM", child.pid) or peak
            if time.perf_counter() - started > timeout:
                timed_out = True
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.02)
        # Reaped here, not by Popen: tell it, so it never waits for the pid again.
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if timed_out:
            stderr += f"\nkilled after {timeout:.0f} s"
        return Process(
            out.read().decode(errors="replace"),
            stderr,
            -9 if timed_out else child.returncode,
            peak,
            wall,
            usage.ru_utime + usage.ru_stime,
        )


def command(reader: Reader, topic: str, params: dict[str, Any], options: Options) -> list[str]:
    """The command line of one run of ``reader`` over ``topic``."""
    if reader.runtime == RUST:
        return [str(options.limit), "--brokers", options.brokers, topic]
    if reader.runtime == KCAT:
        return ["kcat", "-C", "-b", options.brokers, "-t", topic, "-e", "-o", "beginning", "-q"]
    python = options.main_python if reader.runtime == MAIN else options.bench_python
    arguments = {"brokers": options.brokers, "topic": topic, **reader.params, **params}
    return [str(python), str(CHILD), str(reader.child), json.dumps(arguments)]


def one_run(reader: Reader, topic: str, params: dict[str, Any], options: Options) -> dict[str, Any]:
    """One run in a fresh process: the child's figures plus its peak RSS; raises on failure."""
    argv = command(reader, topic, params, options)
    process = run_process(argv, options.run_timeout, keep_stdout=reader.runtime != KCAT)
    reported = _last_json(process.stdout)
    if process.returncode != 0:
        if reported and "error" in reported:
            raise RuntimeError(reported["error"])
        lines = [line for line in process.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(
            f"exit status {process.returncode}: " + " | ".join(lines[-3:] or ["(no output)"])
        )
    if reader.runtime == KCAT:
        # kcat prints nothing countable to /dev/null: its time is the process's wall time.
        result: dict[str, Any] = {"seconds": process.wall_seconds, "baseline_kib": None}
    elif reported is None:
        raise RuntimeError(f"no result on stdout: {process.stdout[-300:]!r}")
    else:
        result = reported
    if result.get("peak_kib") is None:
        result["peak_kib"] = process.sampled_peak_kib
    result["process_cpu_seconds"] = process.cpu_seconds
    if result.get("cpu_seconds") is None:
        # The limit program and kcat: the whole process's CPU time (their start-up takes
        # milliseconds); the Python readers report the read's alone (no interpreter start,
        # no imports).
        result["cpu_seconds"] = process.cpu_seconds
    return result


def _last_json(stdout: str) -> dict[str, Any] | None:
    """The JSON object on the last line of a child's output, if there is one."""
    lines = stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def measure(
    reader: Reader,
    dataset: Dataset,
    broker: Broker,
    options: Options,
    params: dict[str, Any] | None = None,
    before_run: Callable[[], None] | None = None,
    expect_all: bool = True,
) -> dict[str, Any]:
    """Median of ``options.runs`` runs of one reader on one dataset. A failing run ends the
    measurement, which is then recorded as failed with the error text."""
    params = params or {}
    if reader.decodes:
        params = {"schema_registry": options.registry, **params}
    entry: dict[str, Any] = {
        "reader": reader.key,
        "label": reader.label,
        "runtime": reader.runtime,
        "dataset": dataset.name,
        "params": {**reader.params, **params},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "runs": [],
    }
    # The datasets hold exactly what `ensure` checked, except where `before_run` appends.
    expected = broker.message_count(dataset.name)
    for number in range(1, options.runs + 1):
        if before_run:
            before_run()
            expected = broker.message_count(dataset.name)
        try:
            run = one_run(reader, dataset.name, params, options)
            if run.get("messages") is None:
                run["messages"], run["bytes"], run["counted"] = (
                    expected,
                    expected * dataset.size,
                    False,
                )
            if run.get("bytes") is None:
                # A decoding reader sees records, not bytes: it decoded every value's bytes.
                run["bytes"] = run["messages"] * dataset.size
            problem = check_counts(run, expected, dataset, expect_all) or check_amount(
                run, reader, dataset
            )
            if problem:
                raise RuntimeError(problem)
        except Exception as error:  # a failing reader is a result, not a crash
            entry.update(status="failed", error=str(error))
            print(f"  {reader.key:22} {dataset.name}: FAILED: {error}", flush=True)
            return entry
        entry["runs"].append(run)
        print(
            f"  {reader.key:22} {dataset.name} run {number}: {report.describe_run(run)}", flush=True
        )
    return summarize(entry)


def check_counts(run: dict[str, Any], expected: int, dataset: Dataset, expect_all: bool) -> str:
    """Why a run's counts are wrong, or an empty string."""
    messages, payload = run["messages"], run.get("bytes")
    if expect_all and messages != expected:
        return f"read {messages} messages, expected {expected}"
    if not expect_all and messages < FRESH_MESSAGES:
        return f"read {messages} messages, expected at least {FRESH_MESSAGES}"
    if payload is not None and payload != messages * dataset.size:
        return f"read {payload} payload bytes for {messages} messages of {dataset.size} B"
    return ""


def check_amount(run: dict[str, Any], reader: Reader, dataset: Dataset) -> str:
    """Why a decoding reader's sum of ``amount`` is wrong, or an empty string."""
    if not reader.decodes:
        return ""
    if run.get("amount_sum") is None:
        return "reported no amount_sum"
    if Decimal(run["amount_sum"]) != dataset.amount_sum:
        return f"sum(amount) = {run['amount_sum']}, expected {dataset.amount_sum}"
    return ""


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """Medians over the runs, rates from the median time."""
    runs = entry["runs"]
    seconds = statistics.median(run["seconds"] for run in runs)
    messages = runs[0]["messages"]
    payload = runs[0]["bytes"]
    baselines = [run["baseline_kib"] for run in runs if run.get("baseline_kib") is not None]
    entry.update(
        status="ok",
        median_seconds=seconds,
        messages=messages,
        bytes=payload,
        msgs_per_s=messages / seconds,
        mb_per_s=payload / seconds / 1e6,
        peak_rss_mib=max(run["peak_kib"] for run in runs) / 1024,
        baseline_rss_mib=statistics.median(baselines) / 1024 if baselines else None,
    )
    if entry["baseline_rss_mib"] is not None:
        entry["growth_rss_mib"] = max(
            (run["peak_kib"] - run["baseline_kib"]) / 1024 for run in runs
        )
    halves = [run.get("rss_halves_kib") or [None, None] for run in runs]
    if all(first is not None and second is not None for first, second in halves):
        # The run whose second half rose most over its first.
        first, second = max(halves, key=lambda pair: pair[1] - pair[0])
        entry["rss_halves_mib"] = [first / 1024, second / 1024]
    firsts = [run["first_row_seconds"] for run in runs if "first_row_seconds" in run]
    if firsts:
        entry["first_row_seconds"] = statistics.median(firsts)
    cpu = [run["cpu_seconds"] for run in runs if run.get("cpu_seconds") is not None]
    if len(cpu) == len(runs):
        entry["median_cpu_seconds"] = statistics.median(cpu)
        entry["cpu_s_per_m_msgs"] = (
            entry["median_cpu_seconds"] / messages * 1e6 if messages else None
        )
    if runs[0].get("amount_sum") is not None:
        entry["amount_sum"] = runs[0]["amount_sum"]
    return entry


def add_ratios(entries: list[dict[str, Any]]) -> None:
    """Each entry's msgs/s as a ratio to the limit's on the same dataset."""
    limits = {
        entry["dataset"]: entry["msgs_per_s"]
        for entry in entries
        if entry["reader"] == "limit" and entry["status"] == "ok"
    }
    for entry in entries:
        limit = limits.get(entry["dataset"])
        if entry["status"] == "ok" and limit:
            entry["ratio_to_limit"] = entry["msgs_per_s"] / limit


def throughput(
    sets: dict[str, Dataset], readers: Sequence[Reader], broker: Broker, options: Options
) -> list[dict[str, Any]]:
    entries = []
    for role in THROUGHPUT_DATASETS:
        print(f"throughput: {sets[role].name}", flush=True)
        entries.extend(measure(reader, sets[role], broker, options) for reader in readers)
    add_ratios(entries)
    return entries


def add_avro_ratios(entries: list[dict[str, Any]]) -> None:
    """Each Avro entry's msgs/s as a ratio to the peer's and to our raw scan's."""
    rates = {entry["reader"]: entry["msgs_per_s"] for entry in entries if entry["status"] == "ok"}
    for entry in entries:
        if entry["status"] != "ok":
            continue
        if rates.get(AVRO_PEER):
            entry["ratio_to_peer"] = entry["msgs_per_s"] / rates[AVRO_PEER]
        if rates.get(AVRO_RAW):
            entry["ratio_to_raw"] = entry["msgs_per_s"] / rates[AVRO_RAW]


def avro(
    sets: dict[str, Dataset], readers: Sequence[Reader], broker: Broker, options: Options
) -> list[dict[str, Any]]:
    dataset = sets["avro"]
    print(f"avro decoding: {dataset.name}", flush=True)
    entries = [measure(reader, dataset, broker, options) for reader in readers]
    add_avro_ratios(entries)
    return entries


def ray_section(sets: dict[str, Dataset], options: Options) -> list[dict[str, Any]]:
    """kafkars.ray.read_kafka against ray.data.read_kafka on the Ray set (8M x 100 B)."""
    entries = []
    for role in SECTION_DATASETS["ray"]:
        entries += ray_dataset(sets[role], options)
    return entries


def ray_dataset(dataset: Dataset, options: Options) -> list[dict[str, Any]]:
    """Both Ray readers on ``dataset``: each run a fresh process with a local two-CPU Ray
    cluster (bench/ray_child.py), timed from building the dataset to the end of the
    operation."""
    print(f"ray: {dataset.name}", flush=True)
    entries = []
    for op, op_label in RAY_OPS:
        for key, label, reader in RAY_READERS:
            argv = [str(options.main_python), str(RAY_CHILD), reader, dataset.name]
            argv += [str(dataset.messages), "--brokers", options.brokers, "--op", op]
            runs = []
            for _ in range(options.runs):
                process = run_process(argv, options.run_timeout)
                out = _last_json(process.stdout)
                if process.returncode != 0 or out is None or not out.get("ok"):
                    runs.append({"error": (process.stderr.strip()[-400:] or str(out))})
                else:
                    runs.append(out)
            entry: dict[str, Any] = {
                "reader": f"{key}_{op}",
                "label": f"{label}: {op_label}",
                "dataset": dataset.name,
                "runs": runs,
            }
            failed = [run["error"] for run in runs if "error" in run]
            if failed:
                entry.update(status="failed", error=failed[0])
                print(f"  {key} {op}: FAILED: {failed[0]}", flush=True)
            else:
                seconds = statistics.median(run["seconds"] for run in runs)
                entry.update(
                    status="ok", median_seconds=seconds, msgs_per_s=dataset.messages / seconds
                )
                print(f"  {key} {op}: {entry['msgs_per_s']:,.0f} msgs/s", flush=True)
            entries.append(entry)
    rates = {e["reader"]: e["msgs_per_s"] for e in entries if e["status"] == "ok"}
    for op, _ in RAY_OPS:
        ours, peer = rates.get(f"kafkars_ray_{op}"), rates.get(f"ray_read_kafka_{op}")
        if ours and peer:
            for entry in entries:
                if entry["reader"].endswith(f"_{op}") and entry["status"] == "ok":
                    entry["ratio_to_peer"] = entry["msgs_per_s"] / peer
    return entries


def many_partitions(
    sets: dict[str, Dataset],
    readers: Sequence[Reader],
    broker: Broker,
    options: Options,
    earlier: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The readers of :data:`PARTITION_READERS` on the 100-byte set and on the same messages
    over 1,000 partitions; a figure the throughput section already measured in this run is
    reused. Each 1,000-partition entry gets its msgs/s as a ratio to the 8-partition one's."""
    chosen = [reader for reader in readers if reader.key in PARTITION_READERS]
    entries = []
    for role in PARTITION_DATASETS:
        dataset = sets[role]
        print(f"partitions: {dataset.name} ({dataset.partitions:,} partitions)", flush=True)
        for reader in chosen:
            done = report.find(earlier, reader.key, dataset.name)
            if done is not None and done["status"] == "ok":
                entries.append({**done, "measured_in": "throughput"})
                print(f"  {reader.key:22} {dataset.name}: from the throughput section", flush=True)
            else:
                entries.append(measure(reader, dataset, broker, options))
    few, many = sets["100b"].name, sets["100b-1000p"].name
    for entry in entries:
        base = report.find(entries, entry["reader"], few)
        if entry["dataset"] == many and entry["status"] == "ok" and base and base["status"] == "ok":
            entry["ratio_to_8_partitions"] = entry["msgs_per_s"] / base["msgs_per_s"]
    return entries


def memory(sets: dict[str, Dataset], broker: Broker, options: Options) -> list[dict[str, Any]]:
    """Every kafkars reader at every budget of :data:`MEMORY_BUDGETS` on both skewed sets, and
    :data:`MEMORY_REFERENCE` once per set (its entries have no ``budget_mib``)."""
    entries = []
    for role in MEMORY_DATASETS:
        dataset = sets[role]
        print(f"memory reference (DuckDB alone, no Kafka): {dataset.name}'s rows", flush=True)
        shape = {
            "messages": dataset.messages,
            "size": dataset.size,
            "partitions": dataset.partitions,
        }
        entries.append(measure(MEMORY_REFERENCE, dataset, broker, options, shape))
    for budget in MEMORY_BUDGETS:
        for role in MEMORY_DATASETS:
            print(f"memory (max_buffer_bytes = {budget // MIB} MiB): {sets[role].name}", flush=True)
            for key in MEMORY_READERS:
                entry = measure(
                    READER_BY_KEY[key], sets[role], broker, options, {"max_buffer_bytes": budget}
                )
                entry["budget_mib"] = budget / MIB
                entries.append(entry)
    return entries


def latency(sets: dict[str, Dataset], broker: Broker, options: Options) -> list[dict[str, Any]]:
    dataset = sets["100b"]
    print(f"latency (lookback {LOOKBACK_S} s): {dataset.name}", flush=True)

    def append_fresh() -> None:
        broker.append_fresh(dataset.name, FRESH_MESSAGES, dataset.size, dataset.partitions)

    return [
        measure(
            READER_BY_KEY[key],
            dataset,
            broker,
            options,
            params,
            before_run=append_fresh,
            expect_all=False,
        )
        for key, params in LATENCY_READERS
    ]


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The next line ``process`` writes to its stdout, or "" after ``timeout`` s."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        found = json.loads(line)
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _tail(path: Any) -> str:
    """The last lines of a child's stderr file, for an error message."""
    path.seek(0)
    lines = [line for line in path.read().decode(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or "(no stderr)"


def follow_run(
    broker: Broker,
    options: Options,
    reader_params: dict[str, Any],
    producer_params: dict[str, Any],
    rss_every_s: float,
    minutes: int,
) -> dict[str, Any]:
    """One live window: a fresh topic, a following reader (bench/live.py follow, main venv)
    and a paced producer (bench/live.py produce, this Python), each its own process.

    The reader starts first, from the earliest offset of the empty topic, so it reads
    everything the producer writes whatever its start-up takes. While the producer runs,
    the reader's VmRSS is sampled every ``rss_every_s`` s. Then the producer's acknowledged
    end offsets go to the reader, which reports once it has read up to them. Returns the
    producer's report, the reader's, and the RSS samples as (s since the producer's first
    message, MiB); raises when a process fails. The topic is deleted afterwards."""
    topic = broker.create_fresh("bench-live", int(producer_params["partitions"]))
    reader_argv = [
        str(options.main_python),
        str(LIVE),
        "follow",
        json.dumps(
            {
                **reader_params,
                "brokers": options.brokers,
                "topic": topic,
                "partitions": producer_params["partitions"],
                "minutes": minutes,
                "grace_s": GRACE_S,
            }
        ),
    ]
    producer_argv = [
        sys.executable,
        str(LIVE),
        "produce",
        json.dumps({**producer_params, "brokers": options.brokers, "topic": topic}),
    ]
    seconds = float(producer_params["seconds"])
    with tempfile.TemporaryFile() as reader_err, tempfile.TemporaryFile() as producer_err:
        reader = subprocess.Popen(
            reader_argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=reader_err,
            cwd=ROOT,
            text=True,
        )
        producer: subprocess.Popen[str] | None = None
        try:
            ready = _json_line(_read_line(reader, READY_TIMEOUT_S))
            if not ready or not ready.get("ready"):
                problem = (ready or {}).get("error") or _tail(reader_err)
                raise RuntimeError(f"the reader did not start: {problem}")
            time.sleep(SETTLE_S)
            producer = subprocess.Popen(
                producer_argv, stdout=subprocess.PIPE, stderr=producer_err, cwd=ROOT, text=True
            )
            samples: list[tuple[float, float]] = []
            deadline = time.monotonic() + WARMUP_S + seconds + 120
            while producer.poll() is None:
                rss = proc_status_kib("VmRSS", reader.pid)
                if rss is not None:
                    samples.append((time.time(), rss / 1024))
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the producer did not finish within {seconds + 120:.0f} s")
                time.sleep(rss_every_s)
            produced = _last_json(producer.stdout.read() if producer.stdout else "")
            if producer.returncode != 0 or produced is None or "error" in produced:
                problem = (produced or {}).get("error") or _tail(producer_err)
                raise RuntimeError(f"the producer failed: {problem}")
            if produced["undelivered"] or produced["errors"] or not produced["dense"]:
                raise RuntimeError(
                    f"the producer's offsets are not a clean record: {produced['undelivered']} "
                    f"undelivered, {produced['errors']} errors ({produced['first_error']}), "
                    f"dense: {produced['dense']}"
                )
            assert reader.stdin is not None
            reader.stdin.write(json.dumps({"ends": produced["ends"]}) + "\n")
            reader.stdin.close()
            # The reader prints one line more: what it saw, once it reached the ends or its
            # grace time ran out.
            seen = _json_line(_read_line(reader, GRACE_S + 60))
            if seen is None or "error" in seen:
                problem = (seen or {}).get("error") or _tail(reader_err)
                raise RuntimeError(f"the reader failed: {problem}")
        finally:
            for process in (reader, producer):
                if process is not None and process.poll() is None:
                    process.kill()
                    process.wait()
            broker.delete(topic)
    started_s = produced["started_ms"] / 1000
    return {
        "topic": topic,
        "producer": produced,
        "reader": seen,
        "rss_mib": [(round(t - started_s, 1), round(mib, 1)) for t, mib in samples],
    }


def _follow_entry(
    base: dict[str, Any], run: Callable[[], dict[str, Any]], name: str
) -> dict[str, Any]:
    """``base`` with the outcome of ``run`` (a :func:`follow_run`), or marked failed."""
    entry = dict(base)
    try:
        outcome = run()
    except Exception as error:  # a failing reader is a result, not a crash
        entry.update(status="failed", error=str(error))
        print(f"  {name}: FAILED: {error}", flush=True)
        return entry
    seen, produced = outcome["reader"], outcome["producer"]
    latency = seen["latency"]
    entry.update(
        status="ok",
        topic=outcome["topic"],
        produced=produced["sent"],
        warmup_rows=seen["warmup_rows"],
        warmup_s=WARMUP_S,
        producer_rate=produced["rate"],
        rows=seen["rows"],
        lost=seen["lost"],
        repeated=seen["repeated"],
        out_of_order=seen["out_of_order"],
        unexpected=seen["unexpected"],
        timed_out=seen["timed_out"],
        grace_s=GRACE_S,
        p50_ms=latency.get("p50_ms"),
        p90_ms=latency.get("p90_ms"),
        p99_ms=latency.get("p99_ms"),
        max_ms=latency.get("max_ms"),
        per_minute=latency.get("per_minute", []),
        max_ms_per_second=latency.get("max_ms_per_second", []),
        reader_cpu_seconds=seen["cpu_seconds"],
        measuring_cpu_seconds=seen["measuring_cpu_seconds"],
        batches=seen["batches"],
        cpu_s_per_m_msgs=seen["cpu_seconds"] / seen["rows"] * 1e6 if seen["rows"] else None,
        rss_mib=outcome["rss_mib"],
        producer_report=produced,
        reader_partitions=seen["partitions"],
    )
    print(f"  {name}: {report.describe_follow(entry)}", flush=True)
    return entry


def live(broker: Broker, options: Options, quick: bool) -> list[dict[str, Any]]:
    """Each reader of :data:`LIVE_READERS` following each :data:`LIVE_CONFIGS` traffic for
    one window: one window of 60,000 rows is the sample, not repeated per ``--runs``."""
    seconds = LIVE_QUICK_SECONDS if quick else LIVE_SECONDS
    entries = []
    for config in LIVE_CONFIGS:
        print(f"live ({LIVE_RATE:,} msgs/s for {seconds} s): {config.label}", flush=True)
        for key, label, reader_params in LIVE_READERS:
            producer_params = {
                "rate": LIVE_RATE,
                "seconds": seconds,
                "partitions": LIVE_PARTITIONS,
                "silent": list(config.silent),
                "size": LIVE_SIZE,
                "linger_ms": 0,
                "warmup_s": WARMUP_S,
            }
            base = {
                "reader": key,
                "label": label,
                "config": config.key,
                "config_label": config.label,
                "p99_target_ms": config.p99_target_ms,
                "reference": key == LIVE_REFERENCE,
                "idle_timeout_ms": IDLE_TIMEOUT_MS,
                "rate": LIVE_RATE,
                "seconds": seconds,
                "partitions": LIVE_PARTITIONS,
                "message_bytes": LIVE_SIZE,
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
            entries.append(
                _follow_entry(
                    base,
                    lambda reader_params=reader_params, producer_params=producer_params: follow_run(
                        broker,
                        options,
                        reader_params,
                        producer_params,
                        LIVE_RSS_EVERY_S,
                        minutes=math.ceil(seconds / 60) + 1,
                    ),
                    f"{key} ({config.key})",
                )
            )
    return entries


def soak(broker: Broker, options: Options, quick: bool) -> list[dict[str, Any]]:
    """ConsumerManager following :data:`SOAK_RATE` msgs/s for :data:`SOAK_SECONDS` s."""
    seconds = SOAK_QUICK_SECONDS if quick else SOAK_SECONDS
    print(f"soak: ConsumerManager following {SOAK_RATE:,} msgs/s for {seconds} s", flush=True)
    key, label, reader_params = LIVE_READERS[0]
    producer_params = {
        "rate": SOAK_RATE,
        "seconds": seconds,
        "partitions": SOAK_PARTITIONS,
        "size": SOAK_SIZE,
        "linger_ms": SOAK_LINGER_MS,
        "warmup_s": WARMUP_S,
    }
    base = {
        "reader": key,
        "label": label,
        "rate": SOAK_RATE,
        "seconds": seconds,
        "partitions": SOAK_PARTITIONS,
        "message_bytes": SOAK_SIZE,
        "producer_linger_ms": SOAK_LINGER_MS,
        "rss_every_s": SOAK_RSS_EVERY_S,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    entry = _follow_entry(
        base,
        lambda: follow_run(
            broker,
            options,
            reader_params,
            producer_params,
            SOAK_RSS_EVERY_S,
            minutes=math.ceil(seconds / 60) + 1,
        ),
        f"{key} (soak)",
    )
    if entry["status"] == "ok":
        entry.update(report.soak_rss(entry["rss_mib"], seconds))
    return [entry]


def machine_facts() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / MIB, 1),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def tool_version(argv: Sequence[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def child_versions(python: Path, packages: Sequence[str]) -> dict[str, Any]:
    argv = [str(python), str(CHILD), "versions", json.dumps({"packages": list(packages)})]
    try:
        return json.loads(subprocess.run(argv, capture_output=True, check=True, cwd=ROOT).stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as error:
        return {"error": str(error)}


def versions(options: Options, throughput_entries: list[dict[str, Any]]) -> dict[str, Any]:
    jars = sorted((ROOT / ".kafka" / "jars").glob("kafka_2.13-*.jar"))
    limit_librdkafka = next(
        (
            entry["runs"][0].get("librdkafka")
            for entry in throughput_entries
            if entry["reader"] == "limit" and entry["runs"]
        ),
        None,
    )
    return {
        "kafkars commit": tool_version(["git", "describe", "--always", "--dirty"]),
        "main venv": child_versions(
            options.main_python, ["kafkars", "duckdb", "pyarrow", "confluent-kafka"]
        ),
        "bench venv": child_versions(
            options.bench_python,
            ["kafkarrow", "kafka-python", "confluent-kafka", "fastavro", "pyarrow", "matplotlib"],
        ),
        "limit librdkafka": limit_librdkafka,
        "kcat": tool_version(["kcat", "-V"]),
        "kafka broker": jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar")
        if jars
        else None,
        "rustc": tool_version(["rustc", "--version"]),
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of each dataset, one run per measurement"
    )
    parser.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 1)")
    parser.add_argument(
        "--readers",
        help="comma-separated reader keys for the throughput, partitions and avro sections "
        "(default all): " + ", ".join([*READER_BY_KEY, *AVRO_READER_BY_KEY]),
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS)
    )
    parser.add_argument(
        "--brokers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    )
    parser.add_argument(
        "--schema-registry",
        default=REGISTRY_URL,
        help="the Schema Registry's Confluent API, for the avro section (default %(default)s, "
        "or $KAFKARS_SCHEMA_REGISTRY)",
    )
    parser.add_argument("--run-timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("--main-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument(
        "--bench-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python"
    )
    parser.add_argument(
        "--limit", type=Path, default=LIMIT, help="the limit program (default %(default)s)"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; expected some of {list(SECTIONS)}")
    if args.readers:
        known = [*READER_BY_KEY, *AVRO_READER_BY_KEY]
        missing = set(args.readers.split(",")) - set(known)
        if missing:
            parser.error(f"unknown readers {sorted(missing)}; expected some of {known}")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    options = Options(
        brokers=args.brokers,
        runs=args.runs or (1 if args.quick else 3),
        run_timeout=args.run_timeout,
        main_python=args.main_python,
        bench_python=args.bench_python,
        registry=args.schema_registry.rstrip("/"),
        limit=args.limit,
    )
    sections = args.sections.split(",")
    chosen = args.readers.split(",") if args.readers else None
    readers = [READER_BY_KEY[k] for k in chosen if k in READER_BY_KEY] if chosen else READERS
    avro_readers = (
        [AVRO_READER_BY_KEY[k] for k in chosen if k in AVRO_READER_BY_KEY]
        if chosen
        else AVRO_READERS
    )
    started = dt.datetime.now(dt.timezone.utc)
    results: dict[str, Any] = {
        "date": started.date().isoformat(),
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "runs_per_measurement": options.runs,
        "brokers": options.brokers,
        "units": {
            "payload": "key + value bytes (the datasets have no keys)",
            "MB": "10^6 bytes",
            "RSS": "MiB; peak = the process's VmHWM after the read (kcat: sampled every 20 ms); "
            "baseline = its VmRSS before the read",
            "seconds": "median over the runs, from the start of the read to its last message",
            "cpu_seconds": "CPU time of the reader's process (every thread) over that span; the "
            "limit program and kcat: their whole process (wait4)",
            "cpu_s_per_m_msgs": "cpu_seconds / messages x 10^6",
            "latency": "ms: the wall clock when the row was returned - its CreateTime (the "
            "producer's wall clock when it sent it); 1-ms bins, percentiles = the bin's floor",
        },
        "machine": machine_facts(),
    }

    broker = Broker(options.brokers, options.registry)
    sets = datasets(args.quick)
    needed = {role for section in sections for role in SECTION_DATASETS[section]}
    results["datasets"] = {}
    for role, dataset in sets.items():
        if role not in needed:
            continue
        produced = broker.ensure(dataset)
        results["datasets"][role] = {
            "topic": dataset.name,
            "messages_per_partition": list(dataset.counts),
            "message_bytes": dataset.size,
            "purpose": dataset.purpose,
            "compression": "none",
            "produced_seconds": produced,
        }
        if dataset.value_format == "avro":
            results["datasets"][role].update(
                value_format="avro, Confluent wire format (confluent-kafka AvroSerializer)",
                schema=json.loads(ORDER_SCHEMA),
                schema_id=broker.framed_schema_id(dataset.name),
                schema_registry=options.registry,
                amount_sum=str(dataset.amount_sum),
            )

    results["throughput"] = (
        throughput(sets, readers, broker, options) if "throughput" in sections else []
    )
    results["partitions"] = (
        many_partitions(sets, readers, broker, options, results["throughput"])
        if "partitions" in sections
        else []
    )
    results["memory"] = memory(sets, broker, options) if "memory" in sections else []
    results["latency"] = latency(sets, broker, options) if "latency" in sections else []
    results["live"] = live(broker, options, args.quick) if "live" in sections else []
    results["soak"] = soak(broker, options, args.quick) if "soak" in sections else []
    results["avro"] = avro(sets, avro_readers, broker, options) if "avro" in sections else []
    results["ray"] = ray_section(sets, options) if "ray" in sections else []
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["versions"] = versions(options, results["throughput"])
    results["targets"] = report.targets(results, sets)

    stem = results["date"] + ("-quick" if args.quick else "")
    args.results.mkdir(parents=True, exist_ok=True)
    markdown = report.markdown(results, sets)
    (args.results / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.results / f"{stem}.md").write_text(markdown)
    if results["throughput"]:
        report.chart(results, sets, args.results / f"{stem}.png")
    print()
    print(markdown)
    print(f"wrote {args.results / stem}.json, .md and .png (with throughput)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
