"""ConsumerManager after the replay: live latency, silent partitions, threads, the GIL, Ctrl-C."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

from kafkars import ConsumerManager, SourceTopic
from testkit.kafka import BASE_TIMESTAMP_MS, Message, TopicFactory, now_ms, round_robin
from testkit.scan import (
    Polled,
    Record,
    as_stored,
    batch_records,
    expected_scan,
    poll_count,
    poll_until_live,
    window,
)

#: How soon after its acknowledgement a live message must come out of poll.
LIVE_LATENCY_S = 1.0


def config(brokers: str) -> dict[str, str]:
    return {"bootstrap.servers": brokers}


def produce_and_poll(
    topics: TopicFactory,
    topic: str,
    manager: ConsumerManager,
    message: Message,
    count: int,
    polled: Polled | None = None,
) -> tuple[Polled, float]:
    """Produce ``message``, then poll until ``count`` records in all; returns what was polled
    and the seconds from the producer's acknowledgement to the end of the polling."""
    topics.produce(topic, [message])
    acknowledged = time.monotonic()
    polled = poll_count(manager, count, limit_s=10, timeout_ms=100, polled=polled)
    return polled, time.monotonic() - acknowledged


# After is_live(), each message produced (five, one at a time) comes out of poll within a
# second of the producer's acknowledgement, at the next offset.
def test_manager_live_latency(topics: TopicFactory, brokers: str) -> None:
    history = round_robin(5, 1)
    topic = topics.create("latency", partitions=1, messages=history)
    with ConsumerManager(config=config(brokers), topics=[SourceTopic.from_earliest(topic)]) as m:
        assert poll_until_live(m).records == expected_scan(as_stored(topic, 1, history))
        latencies = []
        for i in range(5):
            message = Message(0, f"live{i}".encode(), b"live", now_ms())
            polled, latency = produce_and_poll(topics, topic, m, message, 1)
            latencies.append(latency)
            assert [(r.offset, r.key) for r in polled.records] == [(5 + i, f"live{i}".encode())]
            assert m.is_live()
        assert max(latencies) < LIVE_LATENCY_S, latencies


# Right after going live, a message produced to one partition of four while the other three
# stay silent at the end of their logs arrives within a second, though idle_timeout_ms is a
# minute: the broker's high watermark says they have nothing to wait for. So does a later one
# stamped in the past.
def test_manager_live_silent_partitions(topics: TopicFactory, brokers: str) -> None:
    history = round_robin(40, 4)
    topic = topics.create("silent", partitions=4, messages=history)
    expected = expected_scan(as_stored(topic, 4, history))
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        idle_timeout_ms=60_000,
    ) as manager:
        polled = poll_until_live(manager)
        assert polled.records == expected
        for count, (partition, key, stamp) in enumerate(
            [(2, b"alone", now_ms()), (1, b"old", BASE_TIMESTAMP_MS - 86_400_000)], start=41
        ):
            message = Message(partition, key, b"live", stamp)
            polled, latency = produce_and_poll(topics, topic, manager, message, count, polled)
            [record] = polled.records[count - 1 :]
            assert (record.partition, record.offset, record.key) == (partition, 10, key)
            assert record.timestamp_ms == stamp
            assert latency < LIVE_LATENCY_S, latency


# Partitions that had nothing to replay are at the end of their logs too: on a topic with no
# message yet, the first one, produced to one partition of four, arrives within a second
# though idle_timeout_ms is a minute.
def test_manager_live_empty_partitions(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("empty", partitions=4)
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        idle_timeout_ms=60_000,
    ) as manager:
        polled = poll_until_live(manager)
        assert polled.records == []
        message = Message(3, b"first", b"live", now_ms())
        polled, latency = produce_and_poll(topics, topic, manager, message, 1, polled)
        assert [(r.partition, r.offset, r.key) for r in polled.records] == [(3, 0, b"first")]
        assert latency < LIVE_LATENCY_S, latency


# Live, a partition at the end of its log that stays silent does not hold the others back:
# the backlog already written past the cutoff to three partitions of four comes at once, not
# after idle_timeout_ms (a minute here), and in strict order, since each partition with a
# backlog is still waited for.
def test_manager_live_catch_up_passes_a_silent_partition(
    topics: TopicFactory, brokers: str
) -> None:
    cutoff_ms = BASE_TIMESTAMP_MS + 100_000
    history = round_robin(40, 4)
    backlog = [Message(i % 3, f"b{i}".encode(), b"live", cutoff_ms + i * 7) for i in range(300)]
    messages = [*history, *backlog]
    topic = topics.create("catch-up", partitions=4, messages=messages)
    log = as_stored(topic, 4, messages)
    replay = expected_scan(window(log, cutoff_ms=cutoff_ms))
    caught_up = expected_scan(window(log, start_ms=cutoff_ms))
    assert (len(replay), len(caught_up)) == (40, 300)
    with ConsumerManager(
        config=config(brokers),
        topics=[SourceTopic.from_earliest(topic)],
        cutoff_ms=cutoff_ms,
        idle_timeout_ms=60_000,
        batch_size=50,
    ) as manager:
        polled = poll_until_live(manager)
        assert polled.records == replay
        polled = poll_count(manager, 340, limit_s=20, polled=polled)
    assert polled.records[40:] == caught_up


# Two threads polling one manager at once get disjoint batches that together are exactly the
# replay: each batch a contiguous run of the model's order. A third thread reading
# is_live() and partition_state() meanwhile changes nothing; nothing crashes.
def test_manager_two_threads(topics: TopicFactory, brokers: str) -> None:
    history = round_robin(300, 3, step_ms=7)
    topic = topics.create("threads", partitions=3, messages=history)
    expected = expected_scan(as_stored(topic, 3, history))
    position = {(r.partition, r.offset): i for i, r in enumerate(expected)}
    batches: list[list[Record]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Event()

    def poller() -> None:
        try:
            while not done.is_set():
                records = batch_records(manager.poll(timeout_ms=100))
                if records:
                    with lock:
                        batches.append(records)
        except BaseException as error:
            errors.append(error)

    def watcher() -> None:
        try:
            while not done.is_set():
                manager.is_live()
                assert len(manager.partition_state()) == 3
        except BaseException as error:
            errors.append(error)

    with ConsumerManager(
        config=config(brokers), topics=[SourceTopic.from_earliest(topic)], batch_size=10
    ) as manager:
        threads = [threading.Thread(target=f) for f in (poller, poller, watcher)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while sum(map(len, batches)) < 300 and time.monotonic() < deadline and not errors:
            time.sleep(0.05)
        time.sleep(0.3)  # room for a duplicate or a stray row to show up
        done.set()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
        assert manager.is_live()
    assert errors == []
    assert all(0 < len(batch) <= 10 for batch in batches)
    for batch in batches:
        first = position[(batch[0].partition, batch[0].offset)]
        assert batch == expected[first : first + len(batch)]
    ordered = sorted(batches, key=lambda batch: position[(batch[0].partition, batch[0].offset)])
    assert [r for batch in ordered for r in batch] == expected


# poll releases the GIL while it waits: another Python thread keeps running at much its usual
# pace during a blocking poll.
def test_manager_poll_releases_gil(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("gil", partitions=1)

    def spin(seconds: float) -> int:
        count = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            count += 1
        return count

    with ConsumerManager(config=config(brokers), topics=[SourceTopic.from_latest(topic)]) as m:
        assert m.poll(timeout_ms=100).num_rows == 0
        alone = spin(0.5)
        polling = threading.Thread(target=m.poll, kwargs={"timeout_ms": 2000})
        polling.start()
        time.sleep(0.2)
        assert polling.is_alive()
        during = spin(0.5)
        assert polling.is_alive()
        polling.join(10)
    assert during > alone * 0.3, (alone, during)


CTRL_C = textwrap.dedent(
    """
    import signal, sys, time
    from kafkars import ConsumerManager, SourceTopic

    # Python's own Ctrl-C handling, even if this process was started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    manager = ConsumerManager(
        config={"bootstrap.servers": sys.argv[1]}, topics=[SourceTopic.from_latest(sys.argv[2])]
    )
    manager.poll(timeout_ms=100)
    print("polling", flush=True)
    started = time.monotonic()
    try:
        manager.poll(timeout_ms=60000)
        print("returned", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.2f}s", flush=True)
        # Still usable afterwards.
        print(f"then {manager.poll(timeout_ms=100).num_rows} rows", flush=True)
        manager.close()
        sys.exit(3)
    """
)


# Ctrl-C (SIGINT) interrupts a poll blocked on a silent live topic with KeyboardInterrupt
# within about a second, and the manager stays usable.
def test_manager_ctrl_c(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("ctrl-c", partitions=2, messages=round_robin(4, 2))
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", CTRL_C, brokers, topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the child did not start polling within 30 s"
        assert child.stdout.readline() == "polling\n"
        time.sleep(1)
        assert child.poll() is None
        interrupted = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        ready, _, _ = select.select([child.stdout], [], [], 10)
        first = child.stdout.readline() if ready else ""
        elapsed = time.monotonic() - interrupted
        rest, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 3, stderr
    assert first.startswith("interrupted after "), (first, rest, stderr)
    assert elapsed < 2.0, elapsed
    assert rest == "then 0 rows\n"
