"""Interrupts stop reading promptly: ``con.interrupt()`` ends a bounded kafka_scan in the middle
of a big topic, and a followed one while data flows, within a second; the connection works
afterwards. (Ctrl-C on ``ConsumerManager.poll`` is in test_manager_live.py, and a followed scan
waiting on a silent topic, which DuckDB lets see an interrupt only at its next row, in
test_follow.py.)"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

import kafkars
from testkit.kafka import BASE_TIMESTAMP_MS, Heartbeat, Message, TopicFactory, round_robin

#: How long an interrupt may take to end a query (one second, and some slack for a busy CI).
INTERRUPT_LIMIT_S = 1.25


@dataclass
class StreamedQuery:
    """A query read through DuckDB's Arrow reader in batches of ``batch_size`` rows, in a
    thread, so that its progress shows: ``rows`` counts what came so far, ``reached`` is set
    once ``wanted`` rows came."""

    con: duckdb.DuckDBPyConnection
    sql: str
    wanted: int
    batch_size: int = 1024
    rows: int = 0
    error: BaseException | None = None
    finished_at: float | None = None
    reached: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="kafkars-streamed", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            reader = self.con.sql(self.sql).to_arrow_reader(batch_size=self.batch_size)
            for batch in reader:
                self.rows += batch.num_rows
                if self.rows >= self.wanted:
                    self.reached.set()
        except BaseException as error:
            self.error = error
        finally:
            self.finished_at = time.monotonic()
            self.reached.set()

    def interrupt_when_reached(self, limit_s: float = 60.0) -> float:
        """Interrupt the query once ``wanted`` rows came; return how long it took to end."""
        assert self.reached.wait(limit_s), f"{self.rows} rows after {limit_s}s: {self.sql}"
        assert self.thread.is_alive(), f"the query ended before the interrupt: {self.sql}"
        interrupted = time.monotonic()
        self.con.interrupt()
        self.thread.join(30)
        assert self.finished_at is not None, "the query did not end after the interrupt"
        return self.finished_at - interrupted


def is_interrupt(error: BaseException | None) -> bool:
    """DuckDB's interrupt, as the Arrow reader passes it on."""
    if isinstance(error, duckdb.InterruptException):
        return True
    return isinstance(error, pa.ArrowException | OSError) and "Interrupted" in str(error)


# A bounded scan of 300 000 messages, interrupted after its first 30 000 rows came, ends within
# a second with DuckDB's interrupt error; the same connection then scans the topic whole.
def test_interrupt_bounded_scan(topics: TopicFactory, brokers: str) -> None:
    count = 300_000
    messages = (Message(i % 4, None, b"v" * 100, BASE_TIMESTAMP_MS + i) for i in range(count))
    topic = topics.create(
        "big",
        partitions=4,
        messages=messages,
        producer_config={"linger.ms": 50, "batch.size": 900_000, "batch.num.messages": 10_000},
    )
    # A connection of its own: an interrupt must not reach the `con` fixture's teardown.
    con = kafkars.connect()
    sql = f"SELECT value FROM kafka_scan('{topic}', brokers := '{brokers}')"
    query = StreamedQuery(con, sql, wanted=30_000)
    took = query.interrupt_when_reached()
    assert is_interrupt(query.error), repr(query.error)
    assert took < INTERRUPT_LIMIT_S, took
    assert query.rows < count
    assert con.sql("SELECT 42").fetchall() == [(42,)]
    scanned = f"SELECT count(*) FROM kafka_scan('{topic}', brokers := '{brokers}')"
    assert con.sql(scanned).fetchall() == [(count,)]
    con.close()


# A followed scan while messages keep arriving (a round every 100 ms), interrupted after it
# returned live rows, ends within a second, with no message needed to wake it.
def test_interrupt_followed_scan_while_data_flows(topics: TopicFactory, brokers: str) -> None:
    topic = topics.create("flowing", partitions=2, messages=round_robin(10, 2))
    con = kafkars.connect()
    sql = f"SELECT * FROM kafka_scan('{topic}', brokers := '{brokers}', follow := true)"
    with Heartbeat(topics, topic, partitions=2, period_s=0.1):
        # The 10 replayed rows, then 10 rounds of 2 live ones.
        query = StreamedQuery(con, sql, wanted=30, batch_size=10)
        took = query.interrupt_when_reached()
    assert is_interrupt(query.error), repr(query.error)
    assert took < INTERRUPT_LIMIT_S, took
    assert con.sql("SELECT 42").fetchall() == [(42,)]
    con.close()


CTRL_C_WHILE_CONNECTING = textwrap.dedent(
    """
    import signal, sys, time
    from kafkars import ConsumerManager, SourceTopic

    signal.signal(signal.SIGINT, signal.default_int_handler)
    print("connecting", flush=True)
    try:
        ConsumerManager(
            config={"bootstrap.servers": "127.0.0.1:1"},
            topics=[SourceTopic.from_earliest("anything")],
            timeout_ms=6000,
        )
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    except Exception as error:
        print("failed", time.monotonic(), type(error).__name__, flush=True)
    """
)


# Ctrl-C while a ConsumerManager is being created (waiting for brokers that don't answer) raises
# KeyboardInterrupt within a second, not at the end of timeout_ms.
def test_ctrl_c_while_manager_connects() -> None:
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", CTRL_C_WHILE_CONNECTING],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready
        assert child.stdout.readline() == "connecting\n"
        # Into the wait for the brokers: nothing shows when it starts, so give it a moment.
        time.sleep(1.0)
        assert child.poll() is None
        signalled = time.monotonic()
        os.kill(child.pid, signal.SIGINT)
        ready, _, _ = select.select([child.stdout], [], [], 15)
        line = child.stdout.readline() if ready else ""
        child.wait(15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    outcome, at, *_ = [*line.split(), "", ""]
    assert outcome == "interrupted", line
    assert float(at) - signalled < INTERRUPT_LIMIT_S, line
