"""One run of the Ray section: a fresh process starts a local Ray cluster (two CPUs), reads a
topic with one reader and prints one JSON line.

    .venv/bin/python bench/ray_child.py READER TOPIC EXPECTED --brokers B --op count|map

READER is ``kafkars`` (``kafkars.ray.read_kafka``) or ``ray`` (Ray's own
``ray.data.read_kafka``); ``count`` times ``ds.count()``, ``map`` times
``ds.map_batches(<identity>, batch_format="pyarrow").materialize()``. Seconds run from the
call that builds the dataset (the driver's planning included) to the end of the operation,
after the cluster is up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pyarrow as pa
import ray


def identity(batch: pa.Table) -> pa.Table:
    return batch


def dataset(reader: str, topic: str, brokers: str) -> ray.data.Dataset:
    if reader == "kafkars":
        import kafkars.ray
        from kafkars import SourceTopic

        return kafkars.ray.read_kafka(
            {"bootstrap.servers": brokers}, [SourceTopic.from_earliest(topic)]
        )
    return ray.data.read_kafka(topic, bootstrap_servers=brokers)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("reader", choices=("kafkars", "ray"))
    parser.add_argument("topic")
    parser.add_argument("expected", type=int)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--op", choices=("count", "map"), required=True)
    args = parser.parse_args(argv)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Warm the workers up: the first tasks of a fresh cluster pay for starting them.
    ray.get([ray.remote(lambda: None).remote() for _ in range(2)])
    started = time.perf_counter()
    ds = dataset(args.reader, args.topic, args.brokers)
    if args.op == "count":
        rows = ds.count()
    else:
        rows = ds.map_batches(identity, batch_format="pyarrow").materialize().count()
    seconds = time.perf_counter() - started
    ray.shutdown()
    print(json.dumps({"rows": rows, "seconds": seconds, "ok": rows == args.expected}))
    return 0 if rows == args.expected else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
