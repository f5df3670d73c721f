"""The kafkars benchmarks against the physical limit and the peers: ``make bench``.

    .venv-bench/bin/python bench/run.py [--quick] [--runs N] [--readers a,b] [--sections ...]

Produces the datasets the sections need once (bench/data.py), then runs every reader of
:data:`READERS` on every throughput dataset, each run in a fresh process, and takes the median
of the runs; then the same 2M x 100 B over 1,000 partitions; the memory measurements
(``max_buffer_bytes`` = 64 MiB and 256 MiB on the skewed sets), the first-row latency of a
``relative`` start, and the Avro decoding readers of :data:`AVRO_READERS` on the Avro set (its
schema in the Schema Registry). Writes ``bench/results/<date>[-quick].{json,md,png}`` and
prints the Markdown tables, every throughput figure as a ratio to the limit, every Avro figure
as ratios to the Avro peer and to the raw scan, and a PASS/MISS line per target.

Payload is key + value bytes; MB is 10^6 bytes; RSS figures are MiB; CPU figures are seconds of
user + system time. The kafkars readers run in the main venv (``.venv``, where ``make build``
installs kafkars), the peers in ``.venv-bench``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
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
SECTIONS = ("throughput", "partitions", "memory", "latency", "avro", "ray")
#: The datasets (roles) each section reads: only those of the chosen sections are produced.
SECTION_DATASETS = {
    "throughput": THROUGHPUT_DATASETS,
    "partitions": PARTITION_DATASETS,
    "memory": MEMORY_DATASETS,
    "latency": ("100b",),
    "avro": ("avro",),
    "ray": ("ray",),
}
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
    """Every kafkars reader at every budget of :data:`MEMORY_BUDGETS` on both skewed sets."""
    entries = []
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
