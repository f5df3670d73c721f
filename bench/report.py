"""Turning benchmark results into targets, a Markdown report and a bar chart."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from data import Dataset

Entry = dict[str, Any]
MIB = 1024 * 1024

#: The memory-growth target: peak - baseline on the 10x skewed set may exceed the 1x set's by
#: this fraction of the 1x figure, or by GROWTH_FLOOR_MIB when that is more (RSS moves by a few
#: MiB between runs of the same read: allocator arenas, DuckDB's own caches).
GROWTH_FRACTION, GROWTH_FLOOR_MIB = 0.10, 5.0
#: The many-partition target: ordered kafka_scan on 1,000 partitions reaches this fraction of
#: its msgs/s on 8.
MANY_PARTITIONS_FLOOR = 0.7
#: kafkars' default max_buffer_bytes (MiB), the readers' budget where none is given.
DEFAULT_BUDGET_MIB = 256
#: The soak targets: RSS after the last minute within this fraction of RSS after minute 1;
#: the last minute's latency p99 at most SOAK_P99_FACTOR x the second minute's (the first
#: holds the start-up), or SOAK_P99_FLOOR_MS more when that is more (at a few ms, 2x is the
#: 1-ms bins' noise); the producer reaching this fraction of the rate asked for.
SOAK_RSS_FRACTION = 0.10
SOAK_P99_FACTOR, SOAK_P99_FLOOR_MS = 2.0, 5.0
SOAK_RATE_FLOOR = 0.95


def describe_run(run: dict[str, Any]) -> str:
    """One line for the progress log."""
    rate = run["messages"] / run["seconds"] if run["seconds"] else 0.0
    text = f"{run['messages']:,} msgs in {run['seconds']:.2f} s ({rate:,.0f}/s), "
    text += f"peak {run['peak_kib'] / 1024:.0f} MiB"
    if run.get("baseline_kib") is not None:
        text += f" (baseline {run['baseline_kib'] / 1024:.0f})"
    if "first_row_seconds" in run:
        text += f", first row after {run['first_row_seconds']:.3f} s"
    if run.get("cpu_seconds") is not None:
        text += f", CPU {run['cpu_seconds']:.2f} s"
    return text


def _lost(entry: Entry) -> str:
    """The lost count, saying when it is rows the reader had not returned when its grace time
    after the producer's end ran out (held back, perhaps not lost for good)."""
    if entry["lost"] and entry["timed_out"]:
        return f"{entry['lost']} (not returned {entry['grace_s']:.0f} s after the end)"
    return str(entry["lost"])


def describe_follow(entry: Entry) -> str:
    """One line for the progress log: a live window's outcome."""
    return (
        f"{entry['rows']:,} of {entry['produced']:,} rows (producer {entry['producer_rate']:,.0f}"
        f" msgs/s), lost {_lost(entry)}, repeated {entry['repeated']}, latency p50 "
        f"{entry['p50_ms']} ms, p99 {entry['p99_ms']} ms, max {entry['max_ms']} ms, "
        f"{entry['batches']:,} batches"
    )


def soak_rss(samples: list[tuple[float, float]], seconds: float) -> Entry:
    """The soak's RSS figures from its samples ((s since the first message, MiB)): after
    minute 1 (the first sample at or after 60 s), after the last minute (the last sample
    while the producer was still sending) and their relative change."""
    after_first = next((mib for t, mib in samples if t >= 60), None)
    during = [mib for t, mib in samples if t <= seconds]
    last = during[-1] if during else None
    change = (last - after_first) / after_first if after_first and last is not None else None
    return {"rss_mib_minute_1": after_first, "rss_mib_last_minute": last, "rss_change": change}


def find(
    entries: Iterable[Entry], reader: str, dataset: str, budget_mib: float | None = None
) -> Entry | None:
    """The entry of ``reader`` on ``dataset`` (at the memory budget ``budget_mib``)."""
    return next(
        (
            e
            for e in entries
            if e["reader"] == reader
            and e["dataset"] == dataset
            and (budget_mib is None or e.get("budget_mib") == budget_mib)
        ),
        None,
    )


def _ok(entry: Entry | None) -> bool:
    return entry is not None and entry.get("status") == "ok"


def _target(name: str, value: float | None, threshold: float, shown: str, above: bool) -> Entry:
    """A target met when ``value`` is at least (``above``) or under ``threshold``."""
    if value is None:
        return {"target": name, "value": None, "status": "n/a", "shown": "not measured or failed"}
    met = value >= threshold if above else value < threshold
    return {"target": name, "value": value, "status": "PASS" if met else "MISS", "shown": shown}


def targets(results: dict[str, Any], sets: dict[str, Dataset]) -> list[Entry]:
    """The issue's targets, each PASS, MISS or n/a (when a measurement it needs failed)."""
    rows: list[Entry] = []
    runs = results["throughput"]
    # Ratios to the limit: ordered kafka_scan's count, and ConsumerManager's Arrow batches.
    for reader, label, role, floor in (
        ("kafka_scan", "ordered kafka_scan", "100b", 0.9),
        ("kafka_scan", "ordered kafka_scan", "1kb", 0.9),
        ("consumer_manager", "ConsumerManager", "100b", 0.9),
        ("consumer_manager", "ConsumerManager", "1kb", 1.0),
    ):
        entry = find(runs, reader, sets[role].name)
        ratio = entry.get("ratio_to_limit") if _ok(entry) else None
        rows.append(
            _target(
                f"{label} >= {floor}x the limit on {sets[role].name}",
                ratio,
                floor,
                f"{ratio:.2f}x" if ratio is not None else "",
                above=True,
            )
        )
    for peer, factor in (("kafkarrow", 10), ("confluent_arrow", 5)):
        for role in ("100b", "1kb", "skew"):
            ours = find(runs, "consumer_manager", sets[role].name)
            theirs = find(runs, peer, sets[role].name)
            ratio = ours["msgs_per_s"] / theirs["msgs_per_s"] if _ok(ours) and _ok(theirs) else None
            rows.append(
                _target(
                    f"ConsumerManager >= {factor}x {peer} on {sets[role].name}",
                    ratio,
                    factor,
                    f"{ratio:.1f}x" if ratio is not None else "",
                    above=True,
                )
            )
    rows += many_partition_targets(results.get("partitions", []), sets)
    rows += memory_targets(results["memory"], sets)
    for reader, label in (
        ("kafka_scan_arrow", "kafka_scan"),
        ("consumer_manager", "ConsumerManager"),
    ):
        entry = find(results["latency"], reader, sets["100b"].name)
        first = entry.get("first_row_seconds") if _ok(entry) else None
        rows.append(
            _target(
                f"{label} relative (last minute) first row < 0.5 s on {sets['100b'].name}",
                first,
                0.5,
                f"{first:.3f} s" if first is not None else "",
                above=False,
            )
        )
    return (
        rows
        + live_targets(results.get("live", []))
        + soak_targets(results.get("soak", []))
        + avro_targets(results.get("avro", []), sets["avro"])
        + ray_targets(results.get("ray", []), sets["ray"])
    )


def many_partition_targets(entries: list[Entry], sets: dict[str, Dataset]) -> list[Entry]:
    """The throughput kept on 1,000 partitions; and the default budget, which the spec
    promises for any number of partitions, for each kafkars reader measured there."""
    if not entries:
        return []
    many = sets["100b-1000p"]
    entry = find(entries, "kafka_scan", many.name)
    ratio = entry.get("ratio_to_8_partitions") if _ok(entry) else None
    shown = f"{ratio:.2f}x" if ratio is not None else ""
    # What bounds it from below, in the same run: the limit's own ratio, and the rate of
    # fetching the whole topic with no merge (an ordered read can return its first row only
    # once every partition's head is in, and when each partition is one record batch that is
    # the whole topic).
    limit = find(entries, "limit", many.name)
    if ratio is not None and _ok(limit) and limit.get("ratio_to_8_partitions") is not None:
        shown += f"; the limit: {limit['ratio_to_8_partitions']:.2f}x of its own"
    unordered = find(entries, "kafka_scan_unordered", many.name)
    few = find(entries, "kafka_scan", sets["100b"].name)
    if ratio is not None and _ok(unordered) and _ok(few):
        shown += (
            f"; ordered := false (no merge) on {many.partitions:,} partitions: "
            f"{unordered['msgs_per_s'] / few['msgs_per_s']:.2f}x of the ordered 8-partition rate"
        )
    rows = [
        _target(
            f"ordered kafka_scan on {many.name} ({many.partitions:,} partitions) >= "
            f"{MANY_PARTITIONS_FLOOR}x its msgs/s on {sets['100b'].name} (8 partitions)",
            ratio,
            MANY_PARTITIONS_FLOOR,
            shown,
            above=True,
        )
    ]
    for entry in entries:
        if entry["dataset"] != many.name or entry["reader"] == "limit":
            continue
        growth = entry.get("growth_rss_mib") if _ok(entry) else None
        rows.append(
            _target(
                f"{entry['reader']} peak RSS - baseline < {DEFAULT_BUDGET_MIB} MiB (the default "
                f"max_buffer_bytes) on {many.name}",
                growth,
                DEFAULT_BUDGET_MIB,
                f"{growth:.1f} MiB" if growth is not None else "",
                above=False,
            )
        )
    return rows


#: The memory section's reference reader: DuckDB's Arrow reader over ``range()`` rows.
ARROW_ALONE = "duckdb_arrow_alone"


def memory_targets(entries: list[Entry], sets: dict[str, Dataset]) -> list[Entry]:
    """Per reader and budget: peak - baseline under the budget on both skewed sets, and not
    growing on the 10x set (see GROWTH_FRACTION)."""
    rows: list[Entry] = []
    small_set, large_set = sets["skew"].name, sets["skew-10x"].name
    budgets = list(dict.fromkeys(e["budget_mib"] for e in entries if "budget_mib" in e))
    readers = list(dict.fromkeys(e["reader"] for e in entries if "budget_mib" in e))
    # DuckDB's Arrow reader with no Kafka over the same rows (the entries without a budget).
    alone = [
        entry.get("growth_rss_mib") if _ok(entry) else None
        for entry in (find(entries, ARROW_ALONE, name) for name in (small_set, large_set))
    ]
    for budget_mib in budgets:
        for reader in readers:
            small = find(entries, reader, small_set, budget_mib)
            large = find(entries, reader, large_set, budget_mib)
            growth = small.get("growth_rss_mib") if _ok(small) else None
            larger = large.get("growth_rss_mib") if _ok(large) else None
            both = max(growth, larger) if growth is not None and larger is not None else None
            shown = f"{growth:.1f} and {larger:.1f} MiB" if both is not None else ""
            if reader == "kafka_scan_arrow" and None not in alone:
                shown += f"; DuckDB alone, no Kafka: {alone[0]:.1f} and {alone[1]:.1f} MiB"
            rows.append(
                _target(
                    f"{reader} peak RSS - baseline < {budget_mib:.0f} MiB on {small_set} and "
                    f"{large_set} (max_buffer_bytes = {budget_mib:.0f} MiB)",
                    both,
                    budget_mib,
                    shown,
                    above=False,
                )
            )
            delta = larger - growth if both is not None else None
            tolerance = max(GROWTH_FRACTION * growth, GROWTH_FLOOR_MIB) if both is not None else 0
            rows.append(
                _target(
                    f"{reader} (max_buffer_bytes = {budget_mib:.0f} MiB) peak RSS does not grow "
                    f"on {large_set} (by < {GROWTH_FRACTION:.0%} of {small_set}'s or "
                    f"{GROWTH_FLOOR_MIB:.0f} MiB, whichever is more"
                    + (f": {tolerance:.1f} MiB)" if both is not None else ")"),
                    delta,
                    tolerance,
                    f"{larger:.1f} MiB vs {growth:.1f} MiB ({delta:+.1f})"
                    if delta is not None
                    else "",
                    above=False,
                )
            )
            # The same question asked within one read: a read of the 1x set can end before
            # the buffers reach their working level, so the comparison above also measures
            # how far the short read got. A bounded read levels off early and stays there.
            halves = large.get("rss_halves_mib") if _ok(large) else None
            baseline = large.get("baseline_rss_mib") if _ok(large) else None
            if halves is None or baseline is None:
                halves = None
            rise = halves[1] - halves[0] if halves else None
            # The tolerance is a share of what the read added, not of the whole process.
            allowed = (
                max(GROWTH_FRACTION * (halves[0] - baseline), GROWTH_FLOOR_MIB) if halves else 0
            )
            rows.append(
                _target(
                    f"{reader} (max_buffer_bytes = {budget_mib:.0f} MiB) RSS does not grow "
                    f"during the read of {large_set}: its second half's highest RSS within "
                    f"{GROWTH_FRACTION:.0%} of the first half's above the baseline, or "
                    f"{GROWTH_FLOOR_MIB:.0f} MiB" + (f" ({allowed:.1f} MiB)" if halves else ""),
                    rise,
                    allowed,
                    f"{halves[1]:.1f} MiB vs {halves[0]:.1f} MiB ({rise:+.1f})"
                    if rise is not None
                    else "",
                    above=False,
                )
            )
    return rows


def _count_target(name: str, entry: Entry) -> Entry:
    """Every produced (partition, offset) read exactly once: lost + repeated + unexpected
    rows must be 0."""
    if not _ok(entry):
        return _target(name, None, 1, "", above=False)
    wrong = entry["lost"] + entry["repeated"] + entry["unexpected"]
    shown = (
        f"{entry['rows']:,} read of {entry['produced']:,} produced, lost {_lost(entry)}, "
        f"repeated {entry['repeated']}"
        + (f", unexpected {entry['unexpected']}" if entry["unexpected"] else "")
        + (f", out of offset order {entry['out_of_order']}" if entry["out_of_order"] else "")
    )
    return _target(name, wrong, 1, shown, above=False)


def live_targets(entries: list[Entry]) -> list[Entry]:
    rows: list[Entry] = []
    for entry in entries:
        if entry.get("reference"):
            continue
        what = f"live {entry['reader']}, {entry['config_label']}"
        p99 = entry.get("p99_ms") if _ok(entry) else None
        rows.append(
            _target(
                f"{what}: latency p99 < {entry['p99_target_ms']:.0f} ms",
                p99,
                entry["p99_target_ms"],
                f"{p99} ms" if p99 is not None else "",
                above=False,
            )
        )
        rows.append(_count_target(f"{what}: rows read = rows produced", entry))
    return rows


def _minute(entry: Entry, minute: int) -> Entry | None:
    return next((m for m in entry.get("per_minute", []) if m["minute"] == minute), None)


def soak_targets(entries: list[Entry]) -> list[Entry]:
    rows: list[Entry] = []
    for entry in entries:
        ok = _ok(entry)
        rate = entry.get("producer_rate") if ok else None
        rows.append(
            _target(
                f"soak producer reaches {SOAK_RATE_FLOOR:.0%} of {entry['rate']:,} msgs/s",
                rate,
                SOAK_RATE_FLOOR * entry["rate"],
                f"{rate:,.0f} msgs/s" if rate is not None else "",
                above=True,
            )
        )
        change = entry.get("rss_change") if ok else None
        rows.append(
            _target(
                f"soak RSS after the last minute within {SOAK_RSS_FRACTION:.0%} of RSS after "
                "minute 1",
                abs(change) if change is not None else None,
                SOAK_RSS_FRACTION,
                f"{entry['rss_mib_last_minute']:.1f} MiB vs {entry['rss_mib_minute_1']:.1f} MiB "
                f"({change:+.1%})"
                if change is not None
                else "",
                above=False,
            )
        )
        # The first minute holds the start-up; the last full minute is the one before the
        # producer stopped (minutes count from the first row).
        second = _minute(entry, 1) if ok else None
        last = _minute(entry, int(entry["seconds"] // 60) - 1) if ok else None
        steady = None
        shown = ""
        limit = 0.0
        if second and last and second.get("rows") and last.get("rows"):
            limit = max(SOAK_P99_FACTOR * second["p99_ms"], second["p99_ms"] + SOAK_P99_FLOOR_MS)
            steady = float(last["p99_ms"])
            shown = f"last minute {last['p99_ms']} ms, second minute {second['p99_ms']} ms"
        rows.append(
            _target(
                f"soak latency steady: the last minute's p99 <= {SOAK_P99_FACTOR:.0f}x the second "
                f"minute's (or {SOAK_P99_FLOOR_MS:.0f} ms more)",
                steady,
                limit + 0.5,
                shown,
                above=False,
            )
        )
        rows.append(_count_target("soak rows read = rows produced", entry))
    return rows


#: kafkars.ray.read_kafka must reach this many times Ray's own reader's rows/s.
RAY_PEER_FACTOR = 5


def ray_targets(entries: list[Entry], dataset: Dataset) -> list[Entry]:
    rows: list[Entry] = []
    if not any(e["dataset"] == dataset.name for e in entries):
        return rows
    for op, label in (("count", "ds.count()"), ("map", "map_batches(...).materialize()")):
        entry = find(entries, f"kafkars_ray_{op}", dataset.name)
        ratio = entry.get("ratio_to_peer") if _ok(entry) else None
        rows.append(
            _target(
                f"kafkars.ray.read_kafka {label} >= {RAY_PEER_FACTOR}x ray.data.read_kafka on "
                f"{dataset.name}",
                ratio,
                RAY_PEER_FACTOR,
                f"{ratio:.1f}x" if ratio is not None else "",
                above=True,
            )
        )
    return rows


def ray_table(entries: list[Entry], dataset: Dataset) -> list[str]:
    title = [
        f"{dataset.messages:,} messages x {dataset.size} B ({dataset.partitions} partitions); a "
        "local Ray cluster with two CPUs in each run's fresh process, timed from building the "
        "dataset (planning included) to the end of the operation; `x peer` = rows/s over "
        "ray.data.read_kafka's for the same operation.",
        "",
    ]
    return title + _table(
        "| reader: operation | rows/s | x peer | median s |\n|---|---:|---:|---:|",
        entries,
        lambda entry: [entry["label"]],
        lambda entry: [
            _number(entry["msgs_per_s"]),
            _number(entry.get("ratio_to_peer"), 1),
            _number(entry["median_seconds"], 2),
        ],
    )


#: The Avro decoding targets: (reader, label) of our decoding front ends; each must reach
#: AVRO_PEER_FACTOR x the peer's msgs/s and AVRO_RAW_FLOOR x our raw scan's.
AVRO_DECODERS = (
    ("kafka_scan_avro", "kafka_scan value_format := 'avro'"),
    ("consumer_manager_avro", "ConsumerManager value_format='avro'"),
)
AVRO_PEER_FACTOR = 10
AVRO_RAW_FLOOR = 0.5


def avro_targets(entries: list[Entry], dataset: Dataset) -> list[Entry]:
    rows: list[Entry] = []
    for key, label in AVRO_DECODERS:
        entry = find(entries, key, dataset.name)
        ratio = entry.get("ratio_to_peer") if _ok(entry) else None
        rows.append(
            _target(
                f"{label} >= {AVRO_PEER_FACTOR}x confluent-kafka's AvroDeserializer on "
                f"{dataset.name}",
                ratio,
                AVRO_PEER_FACTOR,
                f"{ratio:.1f}x" if ratio is not None else "",
                above=True,
            )
        )
    for key, label in AVRO_DECODERS:
        entry = find(entries, key, dataset.name)
        ratio = entry.get("ratio_to_raw") if _ok(entry) else None
        rows.append(
            _target(
                f"{label} >= {AVRO_RAW_FLOOR}x the raw-bytes kafka_scan of the same topic on "
                f"{dataset.name}",
                ratio,
                AVRO_RAW_FLOOR,
                f"{ratio:.2f}x" if ratio is not None else "",
                above=True,
            )
        )
    return rows


def _number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _failure(entry: Entry) -> str:
    return "failed: " + entry.get("error", "").replace("|", "/")[:160]


def _table(
    header: str,
    entries: Iterable[Entry],
    lead: Callable[[Entry], list[str]],
    cells: Callable[[Entry], list[str]],
) -> list[str]:
    """A Markdown table: ``header`` (its two lines), then per entry its ``lead`` cells and
    either its other ``cells`` or, for a failed measurement, the failure padded to width."""
    lines = header.splitlines()
    width = lines[0].count("|") - 1
    for entry in entries:
        row = [*lead(entry), *(cells(entry) if _ok(entry) else [_failure(entry)])]
        row += [""] * (width - len(row))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def throughput_table(entries: list[Entry], dataset: Dataset) -> list[str]:
    title = [
        f"### {dataset.name}: {dataset.messages:,} x {dataset.size} B, "
        f"{dataset.partitions} partitions ({dataset.purpose})",
        "",
    ]
    return title + _table(
        "| reader | msgs/s | CPU s / M msgs | MB/s | x limit | median s | peak RSS MiB | "
        "baseline MiB |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        (entry for entry in entries if entry["dataset"] == dataset.name),
        lambda entry: [entry["label"]],
        lambda entry: [
            _number(entry["msgs_per_s"]),
            _number(entry.get("cpu_s_per_m_msgs"), 2),
            _number(entry["mb_per_s"], 1),
            _number(entry.get("ratio_to_limit"), 2),
            _number(entry["median_seconds"], 2),
            _number(entry["peak_rss_mib"]),
            _number(entry["baseline_rss_mib"]),
        ],
    )


def memory_table(entries: list[Entry]) -> list[str]:
    return _table(
        "| reader | max_buffer_bytes | dataset | messages | msgs/s | CPU s / M msgs | "
        "peak RSS MiB | baseline MiB | peak - baseline | RSS MiB, 1st / 2nd half |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        entries,
        lambda entry: [
            entry["label"],
            f"{entry['budget_mib']:.0f} MiB" if "budget_mib" in entry else "none (no Kafka)",
            entry["dataset"],
        ],
        lambda entry: [
            f"{entry['messages']:,}",
            _number(entry["msgs_per_s"]),
            _number(entry.get("cpu_s_per_m_msgs"), 2),
            _number(entry["peak_rss_mib"]),
            _number(entry["baseline_rss_mib"]),
            _number(entry.get("growth_rss_mib"), 1),
            " / ".join(_number(mib) for mib in entry["rss_halves_mib"])
            if entry.get("rss_halves_mib")
            else "",
        ],
    )


def partitions_table(entries: list[Entry], sets: dict[str, Dataset]) -> list[str]:
    few, many = sets["100b"], sets["100b-1000p"]
    title = [
        f"{many.messages:,} x {many.size} B over {few.partitions} partitions ({few.name}) and "
        f"over {many.partitions:,} ({many.name}, produced partition by partition, timestamps "
        "interleaved as in the other sets); `x 8 partitions` = msgs/s over the same reader's "
        f"on {few.name} in this run.",
        "",
    ]
    return title + _table(
        "| reader | dataset | msgs/s | CPU s / M msgs | x 8 partitions | median s | "
        "peak RSS MiB | baseline MiB |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|",
        entries,
        lambda entry: [entry["label"], entry["dataset"]],
        lambda entry: [
            _number(entry["msgs_per_s"]),
            _number(entry.get("cpu_s_per_m_msgs"), 2),
            _number(entry.get("ratio_to_8_partitions"), 2),
            _number(entry["median_seconds"], 2),
            _number(entry["peak_rss_mib"]),
            _number(entry["baseline_rss_mib"]),
        ],
    )


def live_table(entries: list[Entry]) -> list[str]:
    first = entries[0]
    title = [
        f"A producer process sends {first['rate']:,} msgs/s of {first['message_bytes']} B "
        f"(`linger.ms=0`, round-robin) to a fresh {first['partitions']}-partition topic for "
        f"{first['seconds']} s after a {first['warmup_s']:.0f}-s warm-up at the same rate (its "
        "rows checked, not timed), each message's CreateTime = its send time; each reader, in "
        "its own process, follows the topic from its first offset. Latency = the wall clock "
        "when the row was returned to Python - its timestamp (ms, 1-ms bins, same machine). "
        f"idle_timeout = {first['idle_timeout_ms']} ms (the default). CPU s / M msgs = the "
        "reader process's CPU time over the window (less what noting the rows took) per "
        "million rows: mostly the cost of waiting and of many small batches.",
        "",
    ]
    return title + _table(
        "| traffic | reader | rows | lost | repeated | p50 ms | p90 ms | p99 ms | max ms | "
        "CPU s / M msgs | producer msgs/s |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        entries,
        lambda entry: [entry["config_label"], entry["label"]],
        lambda entry: [
            f"{entry['rows']:,}",
            _lost(entry),
            str(entry["repeated"]),
            str(entry["p50_ms"]),
            str(entry["p90_ms"]),
            str(entry["p99_ms"]),
            _number(entry["max_ms"], 1),
            _number(entry.get("cpu_s_per_m_msgs"), 2),
            _number(entry["producer_rate"]),
        ],
    )


def soak_lines(entry: Entry) -> list[str]:
    lines = [
        f"ConsumerManager following a producer process at {entry['rate']:,} msgs/s of "
        f"{entry['message_bytes']} B (`linger.ms={entry['producer_linger_ms']}`) over "
        f"{entry['partitions']} partitions of a fresh topic for {entry['seconds']} s after a "
        f"{entry['warmup_s']:.0f}-s warm-up (checked, not timed); RSS = the reader process's "
        f"VmRSS, sampled every {entry['rss_every_s']:.0f} s; minutes count from the first "
        "timed row (a last, partial one holds the rows returned after the window).",
        "",
    ]
    if not _ok(entry):
        return [*lines, _failure(entry), ""]
    lines += [
        f"- producer: {entry['produced']:,} messages at {entry['producer_rate']:,.0f} msgs/s",
        f"- read: {entry['rows']:,} rows, lost {_lost(entry)}, repeated {entry['repeated']}, "
        f"out of offset order {entry['out_of_order']}",
        f"- RSS: {_number(entry.get('rss_mib_minute_1'), 1)} MiB after minute 1, "
        f"{_number(entry.get('rss_mib_last_minute'), 1)} MiB after the last minute",
        f"- CPU: {_number(entry.get('cpu_s_per_m_msgs'), 2)} s per million rows "
        f"({entry['reader_cpu_seconds']:.1f} s in all)",
        "",
    ]
    return lines + _table(
        "| minute | rows | p50 ms | p99 ms | max ms | RSS MiB at its end |\n"
        "|---:|---:|---:|---:|---:|---:|",
        ({**m, "status": "ok"} for m in entry["per_minute"]),
        lambda m: [
            str(m["minute"] + 1) + (" (after)" if m["minute"] >= entry["seconds"] // 60 else "")
        ],
        lambda m: [
            f"{m['rows']:,}",
            str(m["p50_ms"]),
            str(m["p99_ms"]),
            _number(m["max_ms"], 1),
            _number(_rss_at(entry["rss_mib"], 60 * (m["minute"] + 1)), 1),
        ],
    )


def _rss_at(samples: list[tuple[float, float]], seconds: float) -> float | None:
    """The last RSS sample at or before ``seconds``."""
    before = [mib for t, mib in samples if t <= seconds]
    return before[-1] if before else None


def latency_table(entries: list[Entry]) -> list[str]:
    return _table(
        "| reader | first row s | rows in the last minute (first run) | all rows s |\n"
        "|---|---:|---:|---:|",
        entries,
        lambda entry: [entry["label"]],
        lambda entry: [
            _number(entry.get("first_row_seconds"), 3),
            f"{entry['messages']:,}",
            _number(entry["median_seconds"], 3),
        ],
    )


def avro_table(entries: list[Entry], dataset: Dataset) -> list[str]:
    title = [
        f"{dataset.messages:,} Avro records x {dataset.size} B ({dataset.partitions} partitions, "
        "8 fields with a decimal(12,2) and a timestamp-millis, written by confluent-kafka's "
        f"AvroSerializer in the Confluent wire format); sum(amount) = {dataset.amount_sum}, "
        "checked for every decoding reader. `x peer` = msgs/s over confluent-kafka's "
        "AvroDeserializer's, `x raw` = over the raw-bytes kafka_scan's; CPU s = the reader "
        "process's CPU time (every thread) over the read.",
        "",
    ]
    return title + _table(
        "| reader | msgs/s | MB/s | x peer | x raw | median s | CPU s | peak RSS MiB | "
        "baseline MiB |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        entries,
        lambda entry: [entry["label"]],
        lambda entry: [
            _number(entry["msgs_per_s"]),
            _number(entry["mb_per_s"], 1),
            _number(entry.get("ratio_to_peer"), 1),
            _number(entry.get("ratio_to_raw"), 2),
            _number(entry["median_seconds"], 2),
            _number(entry.get("median_cpu_seconds"), 2),
            _number(entry["peak_rss_mib"]),
            _number(entry["baseline_rss_mib"]),
        ],
    )


def markdown(results: dict[str, Any], sets: dict[str, Dataset]) -> str:
    machine = results["machine"]
    lines = [
        f"# kafkars benchmarks, {results['date']} ({results['mode']} run)",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"{machine['platform']}; load average {machine['load_average_at_start']} at the start, "
        f"{machine.get('load_average_at_end')} at the end. Broker: one local Kafka "
        f"{results.get('versions', {}).get('kafka broker')} on {results['brokers']}, same machine.",
        "",
        f"Each figure is the median of {results['runs_per_measurement']} runs, each in a fresh "
        "process, reading every message from earliest to the end. Payload = key + value bytes "
        "(no keys here), MB = 10^6 bytes, RSS in MiB (peak of the process; baseline = before "
        "the read). `x limit` = msgs/s over the limit's on the same dataset.",
        "",
    ]
    if results["throughput"]:
        lines += ["## Throughput", ""]
        for role in ("100b", "1kb", "skew"):
            lines += throughput_table(results["throughput"], sets[role])
    if results.get("partitions"):
        lines += ["## Many partitions: the 100-byte set over 1,000 partitions", ""]
        lines += partitions_table(results["partitions"], sets)
    if results["memory"]:
        lines += ["## Memory: max_buffer_bytes = 64 MiB and 256 MiB, skewed partitions", ""]
        lines += memory_table(results["memory"])
    if results["latency"]:
        lines += ["## First row of a relative scan (lookback 1 minute) on the 100-byte set", ""]
        lines += latency_table(results["latency"])
    if results.get("live"):
        lines += ["## Live: following a topic as it is written", ""]
        lines += live_table(results["live"])
    for entry in results.get("soak", []):
        lines += ["## Soak: following 20,000 msgs/s", ""]
        lines += soak_lines(entry)
    if results.get("avro"):
        lines += [f"## Avro decoding: {sets['avro'].name}", ""]
        lines += avro_table(results["avro"], sets["avro"])
    for role in ("ray",):
        ray_entries = [e for e in results.get("ray", []) if e["dataset"] == sets[role].name]
        if ray_entries:
            lines += [f"## Ray Data: {sets[role].name}", ""]
            lines += ray_table(ray_entries, sets[role])
    lines += ["## Targets", ""]
    lines += [
        f"- {row['status']}: {row['target']}" + (f": {row['shown']}" if row["shown"] else "")
        for row in results["targets"]
    ]
    return "\n".join([*lines, ""])


def chart(results: dict[str, Any], sets: dict[str, Dataset], path: Path) -> None:
    """Grouped bars: msgs/s per reader per dataset (log scale), each labelled with its ratio to
    the limit, which is drawn as a dashed line over its group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    entries = [e for e in results["throughput"] if e["reader"] != "limit"]
    readers = list(dict.fromkeys(e["reader"] for e in entries))
    labels = {e["reader"]: e["label"] for e in entries}
    names = [sets[role].name for role in ("100b", "1kb", "skew")]
    width = 0.8 / max(len(readers), 1)
    colors = plt.get_cmap("tab10")
    figure, axes = plt.subplots(figsize=(13, 6))
    handles = []
    for i, reader in enumerate(readers):
        color = colors(i % 10)
        failed = False
        for x, name in enumerate(names):
            entry = find(entries, reader, name)
            if entry is None:
                continue
            if not _ok(entry):
                failed = True
                continue
            left = x - 0.4 + (i + 0.5) * width
            axes.bar(left, entry["msgs_per_s"], width, color=color)
            if entry.get("ratio_to_limit") is not None:
                axes.text(
                    left,
                    entry["msgs_per_s"] * 1.05,
                    f"{entry['ratio_to_limit']:.2f}x",
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize=7,
                )
        handles.append(Patch(color=color, label=labels[reader] + (" (failed)" if failed else "")))
    for x, name in enumerate(names):
        limit = find(results["throughput"], "limit", name)
        if _ok(limit):
            axes.hlines(
                limit["msgs_per_s"], x - 0.45, x + 0.45, colors="black", linestyles="dashed"
            )
    handles.insert(
        0,
        plt.Line2D([], [], color="black", linestyle="dashed", label="the limit (= 1.00x)"),
    )
    axes.set_xticks(range(len(names)), names)
    axes.set_yscale("log")
    axes.set_ylabel("messages / s (log scale); bar labels: ratio to the limit")
    axes.set_title(
        f"kafkars vs the limit and peers, {results['date']} ({results['mode']}), "
        f"{results['machine']['cores']} cores, median of {results['runs_per_measurement']}"
    )
    axes.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.grid(axis="y", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
