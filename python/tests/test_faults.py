"""Broker faults in the middle of a scan (issue 6, items 1-4): a broker killed and restarted,
a partition leader killed on the three-node cluster, every broker gone, a topic deleted.

Both front ends are read while the fault happens: ``kafka_scan`` batch by batch through
DuckDB's streaming Arrow reader, and ``ConsumerManager.poll``. "Mid-scan" is checked, not
assumed: with the smallest memory budget (64 KiB) and 16 MB in the topic, each read is shown
to stall short of the end while the brokers are away (see :func:`bulky_messages`).
Measurements go to the log (``--log-cli-level=INFO``); docs/reliability.md records them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from kafkars import ConsumerManager, KafkarsError, SourceTopic
from testkit.brokers import Cluster, PrivateBroker, session_lock
from testkit.kafka import Message, TopicFactory, shuffled_times
from testkit.scan import (
    SCAN_COLUMNS,
    Polled,
    Record,
    as_stored,
    expected_scan,
    poll_count,
    poll_until,
    poll_until_live,
    scan,
    scan_rows,
)

log = logging.getLogger(__name__)

#: The private broker these tests kill: never the shared one other runs use.
FAULTS_INSTANCE = "faults"
FAULTS_PORT = 19392
#: A killed broker waits for its old session to expire before it may register again (9 s by
#: default); a short session makes each restart take seconds, not tens of seconds.
FAULTS_BROKER_PROPS = "broker.heartbeat.interval.ms=500\nbroker.session.timeout.ms=3000\n"

PARTITIONS = 4
MESSAGES = 16_000
VALUE_BYTES = 1_000
#: The smallest memory budget, so that the scan holds as little of the topic as it can.
BUDGET = 65_536
#: Rows per Arrow batch (SQL) and per poll (ConsumerManager).
BATCH_ROWS = 500
#: A read that delivered nothing for this long is stalled.
STALL_QUIET_S = 1.0
#: How much later than its ``timeout`` an error may come.
ERROR_SLACK_S = 3.0


def slow(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that takes tens of seconds; its time limit also covers waiting for another
    session's fault tests (:func:`testkit.brokers.session_lock`)."""
    return pytest.mark.timeout(600)(pytest.mark.slow(test))


# ----------------------------------------------------------------------------------------------
# Fixtures: the brokers a test may kill, and topics on them


@pytest.fixture(scope="session")
def faults_session() -> Iterator[None]:
    """This session alone kills brokers: another one running these tests waits."""
    with session_lock(FAULTS_INSTANCE):
        yield


@pytest.fixture(scope="session")
def faults_broker(
    faults_session: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateBroker]:
    """A private single broker; stopped at the end of the session if this fixture started it."""
    props = tmp_path_factory.mktemp("faults-broker") / "extra.properties"
    props.write_text(FAULTS_BROKER_PROPS)
    broker = PrivateBroker(FAULTS_INSTANCE, FAULTS_PORT, extra_props=props)
    started = broker.ensure_up()
    yield broker
    if started:
        broker.down()


@pytest.fixture(scope="session")
def cluster(faults_session: None) -> Iterator[Cluster]:
    """The three-node cluster; stopped at the end of the session if this fixture started it."""
    nodes = Cluster()
    started = nodes.ensure_up()
    yield nodes
    if started:
        nodes.down()


@pytest.fixture
def faults_topics(
    faults_broker: PrivateBroker, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Topics on the private broker, which is up when the test starts and when it ends."""
    faults_broker.ensure_up()
    factory = TopicFactory(brokers=faults_broker.address, prefix=f"t-{request.node.name}")
    yield factory
    faults_broker.ensure_up()
    factory.delete_all()


@pytest.fixture
def cluster_topics(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Topics on the cluster, whose three nodes run when the test starts and when it ends."""
    cluster.ensure_up()
    factory = TopicFactory(brokers=cluster.address, prefix=f"t-{request.node.name}")
    yield factory
    cluster.ensure_up()
    factory.delete_all()


# ----------------------------------------------------------------------------------------------
# Data, and reading it while the brokers fail


def bulky_messages(seed: int) -> list[Message]:
    """16 MB in 16,000 messages of about 1 kB over four partitions, timestamps interleaving
    irregularly (with ties) across them. Far more than can be in flight when a fault strikes:
    the budget's 64 KiB, plus the record batch per partition that librdkafka holds whatever
    the budget (about 1 MB each with the producer's default batch.size), plus the rows DuckDB
    reads ahead of a streaming result (measured: about 1,000 of these)."""
    filler = b"x" * VALUE_BYTES
    return [
        dataclasses.replace(message, value=(message.value or b"") + b":" + filler)
        for message in shuffled_times(MESSAGES, PARTITIONS, seed)
    ]


def create_bulky(
    factory: TopicFactory, hint: str, seed: int, **create: Any
) -> tuple[str, list[Record]]:
    """A topic holding :func:`bulky_messages`, and the rows a scan of it returns, in order."""
    messages = bulky_messages(seed)
    topic = factory.create(hint, partitions=PARTITIONS, messages=messages, **create)
    return topic, expected_scan(as_stored(topic, PARTITIONS, messages))


def difference(actual: Sequence[Record], expected: Sequence[Record]) -> str:
    """'' when ``actual == expected``; else how they differ: counts, the first differing
    position, and how many messages were lost and how many came twice."""
    if list(actual) == list(expected):
        return ""
    got = Counter((r.topic, r.partition, r.offset) for r in actual)
    wanted = Counter((r.topic, r.partition, r.offset) for r in expected)
    lost = sum((wanted - got).values())
    duplicated = sum(count - 1 for count in got.values() if count > 1)
    first = next(
        (i for i, (a, e) in enumerate(zip(actual, expected, strict=False)) if a != e),
        min(len(actual), len(expected)),
    )
    return (
        f"{len(actual)} rows instead of {len(expected)}: {lost} lost, {duplicated} duplicated, "
        f"first difference at row {first}"
    )


class SqlRead:
    """``kafka_scan`` read through DuckDB's streaming Arrow reader: the first batches in the
    test's thread, then (after :meth:`resume`) the rest in a background thread, so that the
    test can break the brokers in between and watch the read."""

    def __init__(self, con: duckdb.DuckDBPyConnection, call: str, batches: int = 1) -> None:
        self.con = con
        relation = con.sql(f"SELECT {SCAN_COLUMNS} FROM {call}")
        self.reader = relation.to_arrow_reader(batch_size=BATCH_ROWS)
        self.rows: list[tuple] = []
        self.error: BaseException | None = None
        self.ended_at: float | None = None
        for _ in range(batches):
            self._take(self.reader.read_next_batch())
        self.thread = threading.Thread(target=self._rest, name="kafkars-fault-read", daemon=True)

    def _take(self, batch: pa.RecordBatch) -> None:
        self.rows.extend(zip(*(column.to_pylist() for column in batch.columns), strict=True))

    def _rest(self) -> None:
        try:
            for batch in self.reader:
                self._take(batch)
        except BaseException as error:
            self.error = error
        finally:
            self.ended_at = time.monotonic()

    def resume(self) -> None:
        """Read the rest in the background."""
        self.thread.start()

    def wait_stalled(self, total: int, limit_s: float = 30.0) -> None:
        """Wait until no row came for :data:`STALL_QUIET_S`, then assert that the read is
        still running and short of ``total`` rows: the fault really hit it mid-scan."""
        deadline = time.monotonic() + limit_s
        count, since = -1, time.monotonic()
        while self.thread.is_alive() and time.monotonic() - since < STALL_QUIET_S:
            if len(self.rows) != count:
                count, since = len(self.rows), time.monotonic()
            assert time.monotonic() < deadline, f"the read never stalled: {count} rows"
            time.sleep(0.05)
        ended = f"not mid-scan: the read ended ({self.error!r}) with {len(self.rows)} rows"
        assert self.thread.is_alive(), ended
        assert len(self.rows) < total, f"not mid-scan: all {total} rows read before the fault"
        log.info("sql: stalled at %d of %d rows", len(self.rows), total)

    def records(self, limit_s: float = 120.0) -> list[Record]:
        """All rows once the read ends; its error, if it failed."""
        self.thread.join(limit_s)
        assert not self.thread.is_alive(), f"the read still runs after {limit_s}s"
        if self.error is not None:
            raise self.error
        return scan_rows(self.rows)

    def failure(self, limit_s: float = 60.0) -> BaseException:
        """The error the read ended with (failing if it ended without one)."""
        self.thread.join(limit_s)
        assert not self.thread.is_alive(), f"the read still runs after {limit_s}s"
        assert self.error is not None, f"the read ended without an error, {len(self.rows)} rows"
        return self.error

    def close(self) -> None:
        """Stop a read that still runs (after a failed check), so the connection is free."""
        if self.thread.is_alive():
            self.con.interrupt()
            self.thread.join(30)
        self.reader.close()


class ManagerRead:
    """A ``ConsumerManager`` over one topic from the earliest offset, under the small budget,
    after its first non-empty batch."""

    def __init__(self, brokers: str, topic: str, timeout_ms: int = 30_000) -> None:
        self.manager = ConsumerManager(
            config={"bootstrap.servers": brokers},
            topics=[SourceTopic.from_earliest(topic)],
            batch_size=BATCH_ROWS,
            max_buffer_bytes=BUDGET,
            timeout_ms=timeout_ms,
        )
        self.polled: Polled = poll_count(self.manager, 1)

    def wait_stalled(self, total: int) -> None:
        """Poll until a poll brings nothing, then assert that the replay is not complete: the
        fault really hit it mid-scan."""
        poll_until(self.manager, lambda polled: polled.sizes[-1] == 0, polled=self.polled)
        count = len(self.polled.records)
        assert not self.manager.is_live(), f"not mid-scan: live after {count} of {total} rows"
        assert count < total, f"not mid-scan: all {total} rows polled before the fault"
        log.info("manager: stalled at %d of %d rows", count, total)

    def records(self, limit_s: float = 120.0) -> list[Record]:
        """Poll until the replay is complete; everything polled since the start."""
        return poll_until_live(self.manager, limit_s=limit_s, polled=self.polled).records

    def failure(self, limit_s: float = 60.0) -> KafkarsError:
        """Poll until a poll raises; that error."""
        with pytest.raises(KafkarsError) as raised:
            poll_until(self.manager, lambda _: False, limit_s=limit_s, polled=self.polled)
        return raised.value

    def close(self) -> None:
        """Close the manager."""
        self.manager.close()


def scan_call(topic: str, brokers: str, timeout_s: int | None = None) -> str:
    """A ``kafka_scan`` of ``topic`` under the small budget."""
    timeout = f", timeout := INTERVAL {timeout_s} SECONDS" if timeout_s is not None else ""
    return f"kafka_scan('{topic}', brokers := '{brokers}', max_buffer_bytes := {BUDGET}{timeout})"


def timed(action: Callable[[], None]) -> float:
    """Run ``action``; the seconds it took."""
    began = time.monotonic()
    action()
    return time.monotonic() - began


# ----------------------------------------------------------------------------------------------
# 1. Broker restart


# The broker is SIGKILLed and restarted on its data in the middle of five scans in a row, each
# time with a kafka_scan and a ConsumerManager both mid-read: both stall while it is down, and
# every read finishes with exactly the rows of the order model, none lost, none twice. The
# default timeout (30 s) covers the outage.
@slow
def test_broker_restart_mid_scan_five_times(
    con: duckdb.DuckDBPyConnection, faults_topics: TopicFactory, faults_broker: PrivateBroker
) -> None:
    topic, expected = create_bulky(faults_topics, "restart", seed=1)
    brokers = faults_broker.address
    with ThreadPoolExecutor(1) as restarter:
        for round_ in range(5):
            sql = SqlRead(con, scan_call(topic, brokers))
            manager = ManagerRead(brokers, topic)
            try:
                faults_broker.kill()
                killed = time.monotonic()
                # The broker takes seconds to come back: the reads are watched meanwhile.
                restart = restarter.submit(timed, faults_broker.start)
                sql.resume()
                manager.wait_stalled(len(expected))
                sql.wait_stalled(len(expected))
                assert not restart.done(), f"back before both reads stalled: {restart.exception()}"
                back = restart.result() + killed
                assert not (lost := difference(manager.records(), expected)), f"manager: {lost}"
                manager_done = time.monotonic()
                assert not (lost := difference(sql.records(), expected)), f"kafka_scan: {lost}"
                assert sql.ended_at is not None
                log.info(
                    "restart round %d: broker back %.1fs after the kill; then the manager "
                    "finished after %.1fs, kafka_scan after %.1fs",
                    round_ + 1,
                    back - killed,
                    manager_done - back,
                    sql.ended_at - back,
                )
            finally:
                sql.close()
                manager.close()
                faults_broker.ensure_up()


# ----------------------------------------------------------------------------------------------
# 2. Leader failover


# On the three-node cluster (replication factor 3, min.insync.replicas 2, written with
# acks=all) the leader of partition 0 is SIGKILLed while a kafka_scan and a ConsumerManager
# both read the topic: both stall on its partitions, then finish on the new leaders, with the
# node still down, with exactly the rows of the order model.
@slow
def test_leader_failover_mid_scan(
    con: duckdb.DuckDBPyConnection, cluster_topics: TopicFactory, cluster: Cluster
) -> None:
    topic, expected = create_bulky(
        cluster_topics,
        "failover",
        seed=2,
        replication_factor=3,
        config={"min.insync.replicas": "2"},
        producer_config={"acks": "all"},
    )
    leaders = cluster.leaders(topic)
    victim = leaders[0]
    led = [p for p, leader in leaders.items() if leader == victim]
    sql = SqlRead(con, scan_call(topic, cluster.address))
    manager = ManagerRead(cluster.address, topic)
    try:
        killed = time.monotonic()
        cluster.kill_node(victim)
        sql.resume()
        manager.wait_stalled(len(expected))
        sql.wait_stalled(len(expected))
        assert not (lost := difference(manager.records(), expected)), f"manager: {lost}"
        manager_done = time.monotonic() - killed
        assert not (lost := difference(sql.records(), expected)), f"kafka_scan: {lost}"
        assert sql.ended_at is not None
        new_leaders = cluster.leaders(topic)
        assert all(new_leaders[p] not in (victim, -1) for p in led), new_leaders
        log.info(
            "failover: node %d led partitions %s; manager done %.1fs, kafka_scan done %.1fs "
            "after the kill; leaders now %s",
            victim,
            led,
            manager_done,
            sql.ended_at - killed,
            new_leaders,
        )
    finally:
        sql.close()
        manager.close()
        cluster.start_node(victim)


# ----------------------------------------------------------------------------------------------
# 3. Everything down


# The only broker is SIGKILLed while a kafka_scan and a ConsumerManager read (timeout 5 s):
# each fails within the timeout, not later, with an error naming the brokers and the partition
# it waited for; the DuckDB connection answers at once and, with the broker back, scans again.
@slow
def test_everything_down_errors_within_timeout(
    con: duckdb.DuckDBPyConnection, faults_topics: TopicFactory, faults_broker: PrivateBroker
) -> None:
    timeout_s = 5
    topic, expected = create_bulky(faults_topics, "down", seed=3)
    brokers = faults_broker.address
    sql = SqlRead(con, scan_call(topic, brokers, timeout_s))
    manager = ManagerRead(brokers, topic, timeout_ms=timeout_s * 1000)
    try:
        killed = time.monotonic()
        faults_broker.kill()
        sql.resume()
        manager_error = manager.failure()
        manager_after = time.monotonic() - killed
        sql_error = sql.failure()
        assert sql.ended_at is not None
        sql_after = sql.ended_at - killed
        for front_end, error, after in [
            ("manager", manager_error, manager_after),
            ("kafka_scan", sql_error, sql_after),
        ]:
            message = str(error)
            log.info("everything down, %s: error after %.1fs: %s", front_end, after, message)
            assert after <= timeout_s + ERROR_SLACK_S, (front_end, after, message)
            assert brokers in message, (front_end, message)
            assert re.search(rf"topic '{re.escape(topic)}' partition \d", message), message
            assert re.search(r"no progress|unreachable|could not reach", message), message
        assert con.sql("SELECT 42").fetchall() == [(42,)]
    finally:
        sql.close()
        manager.close()
        faults_broker.ensure_up()
    assert not (lost := difference(scan(con, scan_call(topic, brokers)), expected)), lost


# ----------------------------------------------------------------------------------------------
# 4. Topic deleted


def read_during_delete(
    front_end: str, con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> tuple[str, BaseException, float]:
    """Start reading a bulky topic with ``front_end`` (timeout 5 s), delete the topic, and
    return its name, the error the read ended with and the seconds from the deletion to it."""
    topic, _ = create_bulky(topics, "deleted", seed=4)
    if front_end == "kafka_scan":
        sql = SqlRead(con, scan_call(topic, brokers, timeout_s=5))
        try:
            deleted = time.monotonic()
            topics.admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=60)
            sql.resume()
            error = sql.failure()
            assert sql.ended_at is not None
            return topic, error, sql.ended_at - deleted
        finally:
            sql.close()
    manager = ManagerRead(brokers, topic, timeout_ms=5_000)
    try:
        deleted = time.monotonic()
        topics.admin.delete_topics([topic], operation_timeout=30)[topic].result(timeout=60)
        error = manager.failure()
        return topic, error, time.monotonic() - deleted
    finally:
        manager.close()


# The topic is deleted while a scan reads it: the scan fails within its timeout (5 s) with an
# error that names the topic and says it no longer exists, and the connection stays usable.
@pytest.mark.parametrize("front_end", ["kafka_scan", "manager"])
def test_topic_deleted_mid_scan(
    front_end: str, con: duckdb.DuckDBPyConnection, topics: TopicFactory, brokers: str
) -> None:
    topic, error, after = read_during_delete(front_end, con, topics, brokers)
    message = str(error)
    log.info("topic deleted, %s: error after %.1fs: %s", front_end, after, message)
    assert con.sql("SELECT 42").fetchall() == [(42,)]
    assert after <= 5 + ERROR_SLACK_S, (after, message)
    assert f"'{topic}'" in message, message
    # The topic's own name contains "deleted": look for the word in the rest of the message.
    reason = message.replace(topic, "")
    assert re.search(r"does not exist|deleted|no longer exists", reason), message
