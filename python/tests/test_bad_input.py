"""Bad input through both front ends never crashes and never invalidates the database: every
parameter of kafka_scan, kafka_offsets, kafka_topics, kafka_partitions, ConsumerManager and
SourceTopic with a wrong type, a wrong value and NULL (None), and the usual mistakes (empty or
illegal topic names, a topic twice, partitions out of range, an unknown or side-effecting
config, malformed broker lists). Each fails with an error naming the parameter; afterwards the
same connection still answers. test_scan_errors.py and test_manager_errors.py hold more cases
of the same kind (NULL for kafka_scan's and kafka_offsets' parameters, unknown policies, ...);
this file adds the rest, and a randomized test over many combinations.
"""

from __future__ import annotations

import os
import random
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import pytest

import kafkars
from kafkars import ConsumerManager, KafkarsError, SourceTopic
from testkit.kafka import Heartbeat, TopicFactory, round_robin
from testkit.scan import fetch


@dataclass(frozen=True)
class Names:
    """What the cases refer to: a topic with two partitions and four messages, a topic name
    nobody created, and the broker."""

    topic: str
    missing: str
    brokers: str

    def fill(self, template: str) -> str:
        """``template`` with ``$topic``, ``$missing`` and ``$brokers`` filled in."""
        return string.Template(template).safe_substitute(
            topic=self.topic, missing=self.missing, brokers=self.brokers
        )


@pytest.fixture(scope="module")
def names(brokers: str) -> Iterator[Names]:
    """One topic for the whole module: every case only reads it (most fail before that)."""
    factory = TopicFactory(brokers=brokers, prefix="t-bad-input")
    topic = factory.create("main", partitions=2, messages=round_robin(4, 2))
    yield Names(topic=topic, missing=factory.unique_name("missing"), brokers=brokers)
    factory.delete_all()


@pytest.fixture(scope="module")
def shared_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """One connection for every SQL case: errors one after another must not wear it out."""
    connection = kafkars.connect()
    yield connection
    connection.close()


def answers(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` still runs a query (an INTERNAL or FATAL error invalidates a database)."""
    return con.sql("SELECT 42").fetchall() == [(42,)]


# --- SQL ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlCase:
    """A table function call that must fail with ``error``, whose message contains every string
    of ``expected`` (``$topic``, ``$missing``, ``$brokers`` filled in), within ``within_s``."""

    call: str
    error: type[duckdb.Error]
    expected: tuple[str, ...]
    within_s: float = 2.0


def call(
    function: str, arguments: str = "", first: str | None = "'$topic'", brokers: bool = True
) -> str:
    """``function(first, brokers := '$brokers', arguments)``, leaving out what is None/False."""
    parts = [first] if first is not None else []
    if brokers:
        parts.append("brokers := '$brokers'")
    if arguments:
        parts.append(arguments)
    return f"{function}({', '.join(parts)})"


def bind_error(function: str, parameter: str, *details: str) -> tuple[str, ...]:
    """What a parameter kafkars refuses at bind time shows: the function, the parameter, and
    the details."""
    return (f"{function}: invalid {parameter}: ", *details)


def cast_error(parameter: str) -> tuple[str, ...]:
    """What DuckDB shows when a value can't be cast to the named parameter's type: it names the
    parameter."""
    return ("Could not cast value", f'named parameter "{parameter}"')


BinderError = duckdb.BinderException
InputError = duckdb.InvalidInputException
SCAN_AND_OFFSETS = ("kafka_scan", "kafka_offsets")
ALL_FUNCTIONS = ("kafka_scan", "kafka_offsets", "kafka_topics", "kafka_partitions")
TOPIC_RULE = "legal characters are ASCII letters, digits, '.', '_' and '-'"
POLICIES = "'earliest', 'latest', 'timestamp', 'relative'"
PROTOCOLS = "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"


def first_argument(function: str) -> str | None:
    """The positional argument a valid call of ``function`` gives."""
    return None if function == "kafka_topics" else "'$topic'"


def selection_cases(function: str) -> dict[str, SqlCase]:
    """kafka_scan's and kafka_offsets' topic list and selection parameters."""

    def f(arguments: str = "", first: str | None = "'$topic'") -> str:
        return call(function, arguments, first)

    return {
        # The positional topic list. DuckDB rejects a non-text argument while picking the
        # function: its message names the function and the argument type, not "topics".
        "topics-wrong-type": SqlCase(
            f(first="42"), BinderError, ("No function matches", f"{function}(INTEGER_LITERAL")
        ),
        "topics-empty": SqlCase(
            f(first="''"),
            BinderError,
            bind_error(function, "topics", "expected a topic name, found an empty string"),
        ),
        "topics-illegal-character": SqlCase(
            f(first="'orders/2024'"),
            BinderError,
            bind_error(function, "topics", "'orders/2024' contains the character '/'", TOPIC_RULE),
        ),
        "topics-non-ascii": SqlCase(
            f(first="'caf\u00e9'"),
            BinderError,
            bind_error(function, "topics", "contains the character '\u00e9'"),
        ),
        "topics-too-long": SqlCase(
            f(first=f"'{'t' * 250}'"),
            BinderError,
            bind_error(function, "topics", "at most 249 characters, found 250"),
        ),
        "topics-twice": SqlCase(
            f(first="'$topic, $topic'"),
            BinderError,
            bind_error(function, "topics", "topic '$topic' is listed twice"),
        ),
        "topics-empty-entry": SqlCase(
            f(first="'$topic,,$topic'"),
            BinderError,
            bind_error(function, "topics", "expected a topic name, found an empty string"),
        ),
        # DuckDB casts a list to its text form, which is no broker list.
        "brokers-wrong-type": SqlCase(
            call(function, first="'$topic'", brokers=False, arguments="brokers := [1, 2]"),
            BinderError,
            bind_error(function, "brokers", "expected host:port, found '[1' without a port"),
        ),
        "brokers-empty-entry": SqlCase(
            call(function, first="'$topic'", brokers=False, arguments="brokers := '$brokers,,'"),
            BinderError,
            bind_error(function, "brokers", "found an empty entry in '$brokers,,'"),
        ),
        "brokers-port-out-of-range": SqlCase(
            call(function, first="'$topic'", brokers=False, arguments="brokers := 'kafka:99999'"),
            BinderError,
            bind_error(function, "brokers", "a port in 1..65535, found 'kafka:99999'"),
        ),
        "brokers-unknown-protocol": SqlCase(
            call(
                function, first="'$topic'", brokers=False, arguments="brokers := 'http://$brokers'"
            ),
            BinderError,
            bind_error(function, "brokers", f"PROTOCOL one of {PROTOCOLS}", "'http://$brokers'"),
        ),
        "brokers-semicolons": SqlCase(
            call(
                function,
                first="'$topic'",
                brokers=False,
                arguments="brokers := '$brokers;$brokers'",
            ),
            BinderError,
            bind_error(function, "brokers", "with an invalid host"),
        ),
        # DuckDB casts the number to text; it names no policy.
        "policy-wrong-type": SqlCase(
            f("policy := 42"),
            BinderError,
            bind_error(function, "policy", f"expected one of {POLICIES}, found '42'"),
        ),
        "policy-start-superfluous": SqlCase(
            f("policy := 'latest', start := TIMESTAMPTZ '2024-01-01 00:00:00+00'"),
            BinderError,
            bind_error(function, "start", "policy 'latest' takes no start; leave it out"),
        ),
        "start-wrong-type": SqlCase(f("start := 42"), InputError, cast_error("start")),
        "start-not-a-timestamp": SqlCase(
            f("start := 'yesterday'"), InputError, cast_error("start")
        ),
        "start-before-epoch": SqlCase(
            f("start := TIMESTAMPTZ '1960-01-01 00:00:00+00'"),
            BinderError,
            bind_error(
                function,
                "start",
                "expected a timestamp at or after 1970-01-01T00:00:00Z",
                "found 1960-01-01T00:00:00Z",
            ),
        ),
        "start-and-lookback": SqlCase(
            f("start := TIMESTAMPTZ '2024-01-01 00:00:00+00', lookback := INTERVAL 1 HOUR"),
            BinderError,
            bind_error(function, "start", "give either start", "or lookback", "not both"),
        ),
        "lookback-wrong-type": SqlCase(f("lookback := 3600"), InputError, cast_error("lookback")),
        "lookback-with-timestamp-policy": SqlCase(
            f(
                "policy := 'timestamp', start := TIMESTAMPTZ '2024-01-01 00:00:00+00', "
                "lookback := INTERVAL 1 HOUR"
            ),
            BinderError,
            bind_error(function, "lookback", "policy 'timestamp' takes no lookback"),
        ),
        "cutoff-wrong-type": SqlCase(f("cutoff := true"), InputError, cast_error("cutoff")),
        "cutoff-before-epoch": SqlCase(
            f("cutoff := '-infinity'::TIMESTAMPTZ"),
            BinderError,
            bind_error(function, "cutoff", "expected a timestamp at or after 1970-01-01"),
        ),
        "lookback-not-an-interval": SqlCase(
            f("lookback := 'a while'"), InputError, cast_error("lookback")
        ),
        "partitions-wrong-type": SqlCase(
            f("partitions := 1"), InputError, cast_error("partitions")
        ),
        "partitions-not-numbers": SqlCase(
            f("partitions := ['zero']"), InputError, cast_error("partitions")
        ),
        "partitions-beyond-integer": SqlCase(
            f("partitions := [3000000000]"), InputError, cast_error("partitions")
        ),
        "partitions-empty": SqlCase(
            f("partitions := []"),
            BinderError,
            bind_error(function, "partitions", "expected at least one partition"),
        ),
        "partitions-negative": SqlCase(
            f("partitions := [0, -1]"),
            BinderError,
            bind_error(function, "partitions", "partition numbers start at 0, found -1"),
        ),
        "partitions-twice": SqlCase(
            f("partitions := [1, 0, 1]"),
            BinderError,
            bind_error(function, "partitions", "partition 1 is listed twice"),
        ),
        "partitions-null-element": SqlCase(
            f("partitions := [0, NULL]"),
            BinderError,
            bind_error(function, "partitions", "a partition is NULL"),
        ),
        # Out of range only shows once the topic's partitions are known (at init).
        "partitions-out-of-range": SqlCase(
            f("partitions := [2]"),
            InputError,
            (
                f"{function}: invalid partitions: ",
                "partition 2 does not exist in topic '$topic', which has partitions 0..1",
            ),
        ),
    }


def client_cases(function: str) -> dict[str, SqlCase]:
    """``brokers``, ``timeout`` and ``config``, which every function takes."""
    first = first_argument(function)

    def f(arguments: str) -> str:
        return call(function, arguments, first)

    cases = {
        "brokers-without-port": SqlCase(
            call(function, "brokers := 'localhost'", first, brokers=False),
            BinderError,
            bind_error(function, "brokers", "expected host:port, found 'localhost' without a port"),
        ),
        "brokers-empty": SqlCase(
            call(function, "brokers := ''", first, brokers=False),
            BinderError,
            bind_error(function, "brokers", "found an empty string"),
        ),
        "timeout-wrong-type": SqlCase(f("timeout := 3"), InputError, cast_error("timeout")),
        "timeout-not-an-interval": SqlCase(
            f("timeout := 'soon'"), InputError, cast_error("timeout")
        ),
        "timeout-too-long": SqlCase(
            f("timeout := INTERVAL 30 DAYS"),
            BinderError,
            bind_error(function, "timeout", "expected at most", "found 2592000s"),
        ),
        "timeout-below-a-millisecond": SqlCase(
            f("timeout := INTERVAL 1 MICROSECOND"),
            BinderError,
            bind_error(function, "timeout", "expected at least 1ms"),
        ),
        "timeout-negative": SqlCase(
            f("timeout := INTERVAL '-5 seconds'"),
            BinderError,
            bind_error(function, "timeout", "expected a non-negative interval, found -5s"),
        ),
        "config-wrong-type": SqlCase(
            f("config := 'client.id=me'"), InputError, cast_error("config")
        ),
        "config-unknown-key": SqlCase(
            f("config := MAP {'fetch.max.bytez': '1000000'}"),
            BinderError,
            bind_error(function, "config", "'fetch.max.bytez' is not a librdkafka property"),
        ),
        "config-refused-value": SqlCase(
            f("config := MAP {'isolation.level': 'read_sometimes'}"),
            BinderError,
            bind_error(
                function, "config", "refuses 'read_sometimes' for property 'isolation.level'"
            ),
        ),
        "config-offset-store": SqlCase(
            f("config := MAP {'enable.auto.offset.store': 'true'}"),
            BinderError,
            (
                f"{function}: config property 'enable.auto.offset.store' is not allowed",
                "kafkars never stores offsets",
            ),
        ),
        "config-auto-create": SqlCase(
            f("config := MAP {'allow.auto.create.topics': 'yes'}"),
            BinderError,
            (
                f"{function}: config property 'allow.auto.create.topics' is not allowed",
                "kafkars never creates topics",
            ),
        ),
        "config-empty-key": SqlCase(
            f("config := MAP {'': 'x'}"),
            BinderError,
            bind_error(function, "config", "a property name is empty"),
        ),
        "config-null-value": SqlCase(
            f("config := MAP {'client.id': NULL}"),
            BinderError,
            bind_error(function, "config", "property 'client.id' is NULL"),
        ),
        "config-contradicts-brokers": SqlCase(
            f("config := MAP {'bootstrap.servers': '127.0.0.1:2'}"),
            BinderError,
            bind_error(function, "brokers", "contradicts config 'bootstrap.servers'"),
        ),
        "config-malformed-bootstrap": SqlCase(
            call(function, "config := MAP {'bootstrap.servers': 'kafka'}", first, brokers=False),
            BinderError,
            (f"{function}: invalid config 'bootstrap.servers': ", "found 'kafka' without a port"),
        ),
        # Well-formed lists where no Kafka answers: an error naming them within the timeout.
        "brokers-unresolvable": SqlCase(
            call(
                function,
                "brokers := 'no-such-host.invalid:9092', timeout := INTERVAL 3 SECONDS",
                first,
                brokers=False,
            ),
            InputError,
            (f"{function}: could not reach Kafka brokers no-such-host.invalid:9092 within",),
            within_s=5.0,
        ),
    }
    if function in ("kafka_topics", "kafka_partitions"):
        # kafka_scan's and kafka_offsets' NULLs are in test_scan_errors.py, kafka_partitions'
        # NULL topic and brokers in sql/tests/kafka_partitions.test.
        cases["timeout-null"] = SqlCase(
            f("timeout := NULL"),
            BinderError,
            bind_error(function, "timeout", "expected a value, found NULL"),
        )
        cases["config-null"] = SqlCase(
            f("config := NULL"),
            BinderError,
            bind_error(function, "config", "expected a value, found NULL"),
        )
    if function == "kafka_topics":
        cases["brokers-null"] = SqlCase(
            call(function, "brokers := NULL", None, brokers=False),
            BinderError,
            bind_error(function, "brokers", "expected a value, found NULL"),
        )
    return cases


def scan_only_cases() -> dict[str, SqlCase]:
    """kafka_scan's own parameters: follow, idle_timeout, metadata_refresh, max_buffer_bytes."""

    def f(arguments: str) -> str:
        return call("kafka_scan", arguments)

    return {
        "brokers-refusing": SqlCase(
            call(
                "kafka_scan",
                "brokers := '127.0.0.1:1, 127.0.0.1:2', timeout := INTERVAL 3 SECONDS",
                "'$topic'",
                brokers=False,
            ),
            InputError,
            ("kafka_scan: could not reach Kafka brokers 127.0.0.1:1,127.0.0.1:2 within",),
            within_s=5.0,
        ),
        "follow-wrong-type": SqlCase(f("follow := 'maybe'"), InputError, cast_error("follow")),
        "follow-a-list": SqlCase(f("follow := [true]"), InputError, cast_error("follow")),
        "follow-null": SqlCase(
            f("follow := NULL"),
            BinderError,
            bind_error("kafka_scan", "follow", "expected a value, found NULL"),
        ),
        "idle-timeout-wrong-type": SqlCase(
            f("follow := true, idle_timeout := 5"), InputError, cast_error("idle_timeout")
        ),
        "idle-timeout-negative": SqlCase(
            f("follow := true, idle_timeout := INTERVAL '-1 second'"),
            BinderError,
            bind_error("kafka_scan", "idle_timeout", "expected a non-negative interval"),
        ),
        "idle-timeout-without-follow": SqlCase(
            f("idle_timeout := INTERVAL 1 SECOND"),
            BinderError,
            bind_error("kafka_scan", "idle_timeout", "applies to follow mode only"),
        ),
        "idle-timeout-null": SqlCase(
            f("follow := true, idle_timeout := NULL"),
            BinderError,
            bind_error("kafka_scan", "idle_timeout", "expected a value, found NULL"),
        ),
        "metadata-refresh-without-follow": SqlCase(
            f("metadata_refresh := INTERVAL 1 SECOND"),
            BinderError,
            (
                "kafka_scan: invalid metadata_refresh: it applies to follow mode only; add "
                "follow := true or leave it out",
            ),
        ),
        "metadata-refresh-zero": SqlCase(
            f("follow := true, metadata_refresh := INTERVAL 0 SECONDS"),
            BinderError,
            ("kafka_scan: invalid metadata_refresh: expected a positive interval, found 0s",),
        ),
        "metadata-refresh-negative": SqlCase(
            f("follow := true, metadata_refresh := INTERVAL '-1.5 seconds'"),
            BinderError,
            ("kafka_scan: invalid metadata_refresh: expected a positive interval, found -1.5s",),
        ),
        "metadata-refresh-null": SqlCase(
            f("follow := true, metadata_refresh := NULL"),
            BinderError,
            ("kafka_scan: invalid metadata_refresh: expected a value, found NULL",),
        ),
        "metadata-refresh-wrong-type": SqlCase(
            f("follow := true, metadata_refresh := 5"), InputError, cast_error("metadata_refresh")
        ),
        "max-buffer-bytes-wrong-type": SqlCase(
            f("max_buffer_bytes := '1MB'"), InputError, cast_error("max_buffer_bytes")
        ),
        "max-buffer-bytes-beyond-bigint": SqlCase(
            f("max_buffer_bytes := 1e30"), InputError, cast_error("max_buffer_bytes")
        ),
        "max-buffer-bytes-negative": SqlCase(
            f("max_buffer_bytes := -1"),
            BinderError,
            bind_error("kafka_scan", "max_buffer_bytes", "expected at least 65536 bytes, found -1"),
        ),
        "max-buffer-bytes-too-small": SqlCase(
            f("max_buffer_bytes := 65535"),
            BinderError,
            bind_error("kafka_scan", "max_buffer_bytes", "at least 65536 bytes, found 65535"),
        ),
        # kafka_offsets reads nothing, so it has no budget.
        "max-buffer-bytes-on-offsets": SqlCase(
            call("kafka_offsets", "max_buffer_bytes := 1048576"),
            BinderError,
            ('Invalid named parameter "max_buffer_bytes" for function kafka_offsets',),
        ),
    }


def metadata_cases() -> dict[str, SqlCase]:
    """kafka_partitions' topic, and arguments the metadata functions don't take."""
    return {
        "kafka_partitions-topic-wrong-type": SqlCase(
            call("kafka_partitions", first="42"),
            BinderError,
            ("No function matches", "kafka_partitions(INTEGER_LITERAL"),
        ),
        "kafka_partitions-topic-list": SqlCase(
            call("kafka_partitions", first="'$topic,$topic'"),
            BinderError,
            bind_error("kafka_partitions", "topic", "takes one topic, found the list"),
        ),
        "kafka_partitions-topic-too-long": SqlCase(
            call("kafka_partitions", first=f"'{'p' * 300}'"),
            BinderError,
            bind_error("kafka_partitions", "topic", "at most 249 characters, found 300"),
        ),
        "kafka_partitions-topic-dot": SqlCase(
            call("kafka_partitions", first="'..'"),
            BinderError,
            bind_error("kafka_partitions", "topic", "'..' is not a legal topic name"),
        ),
        "kafka_partitions-unknown-topic": SqlCase(
            call("kafka_partitions", first="'$missing'"),
            InputError,
            ("kafka_partitions: topic '$missing' does not exist on Kafka brokers $brokers",),
        ),
        "kafka_topics-positional-argument": SqlCase(
            call("kafka_topics", first="'$topic'"),
            BinderError,
            ("No function matches", "kafka_topics(STRING_LITERAL"),
        ),
        "kafka_partitions-selection-parameter": SqlCase(
            call("kafka_partitions", "policy := 'earliest'"),
            BinderError,
            ('Invalid named parameter "policy" for function kafka_partitions',),
        ),
    }


SQL_CASES: dict[str, SqlCase] = {
    **{
        f"{function}-{name}": case
        for function in SCAN_AND_OFFSETS
        for name, case in selection_cases(function).items()
    },
    **{
        f"{function}-{name}": case
        for function in ALL_FUNCTIONS
        for name, case in client_cases(function).items()
    },
    **{f"kafka_scan-{name}": case for name, case in scan_only_cases().items()},
    **metadata_cases(),
}


# Each bad argument fails with the expected DuckDB exception, whose message names the function
# and the parameter (and the accepted values where there is a set), in time; no topic gets
# created; the same connection answers afterwards.
@pytest.mark.parametrize("case", SQL_CASES.values(), ids=SQL_CASES.keys())
def test_sql_bad_input(shared_con: duckdb.DuckDBPyConnection, names: Names, case: SqlCase) -> None:
    sql = f"SELECT * FROM {names.fill(case.call)}"
    started = time.monotonic()
    with pytest.raises(duckdb.Error) as raised:
        fetch(shared_con, sql, limit_s=30)
    elapsed = time.monotonic() - started
    assert type(raised.value) is case.error, (sql, repr(raised.value))
    message = str(raised.value)
    for expected in case.expected:
        assert names.fill(expected) in message, (sql, message)
    assert elapsed < case.within_s, (sql, elapsed)
    if "$missing" in case.call:
        cluster = TopicFactory(brokers=names.brokers).admin.list_topics(timeout=10)
        assert names.missing not in cluster.topics, "a failed call created the topic"
    assert answers(shared_con)


# The accepted-values lists are complete: every policy named in an error works.
def test_sql_policies_listed_are_accepted(
    shared_con: duckdb.DuckDBPyConnection, names: Names
) -> None:
    arguments = {
        "earliest": "",
        "latest": "",
        "timestamp": ", start := TIMESTAMPTZ '2024-01-01 00:00:02+00'",
        "relative": ", lookback := INTERVAL 1 HOUR",
    }
    counts = {
        policy: fetch(
            shared_con,
            names.fill(
                "SELECT count(*) FROM kafka_scan('$topic', brokers := '$brokers', "
                f"policy := '{policy}'{extra})"
            ),
        )
        for policy, extra in arguments.items()
    }
    # round_robin(4, 2) stamps its messages one second apart from 2024-01-01 00:00:00.
    assert counts == {"earliest": [(4,)], "latest": [(0,)], "timestamp": [(2,)], "relative": [(0,)]}


# --- Python -------------------------------------------------------------------------------------


def build(names: Names, **overrides: Any) -> ConsumerManager:
    """A manager over ``names.topic`` from the earliest offset, with ``overrides``."""
    arguments: dict[str, Any] = {
        "config": {"bootstrap.servers": names.brokers},
        "topics": [SourceTopic.from_earliest(names.topic)],
        **overrides,
    }
    return ConsumerManager(**arguments)


def configured(**properties: object) -> Callable[[Names], object]:
    """A manager whose config adds ``properties`` (dots spelled ``__``) to the brokers."""
    extra = {key.replace("__", "."): value for key, value in properties.items()}
    return lambda n: build(n, config={"bootstrap.servers": n.brokers, **extra})


def bootstrap(servers: str, **overrides: Any) -> Callable[[Names], object]:
    """A manager whose config names ``servers`` as the brokers."""
    return lambda n: build(n, config={"bootstrap.servers": servers}, **overrides)


def polled(timeout_ms: object) -> Callable[[Names], object]:
    """A manager polled with ``timeout_ms``."""

    def poll(names: Names) -> object:
        with build(names) as manager:
            return manager.poll(timeout_ms=timeout_ms)

    return poll


def closed_poll(names: Names) -> object:
    """Poll a closed manager."""
    manager = build(names)
    manager.close()
    return manager.poll(timeout_ms=0)


@dataclass(frozen=True)
class PyCase:
    """A call that must raise ``error`` with a message containing every string of
    ``expected`` (``$topic`` and ``$missing`` filled in), within ``within_s``."""

    call: Callable[[Names], object]
    error: type[Exception]
    expected: tuple[str, ...]
    within_s: float = 2.0


TOO_BIG = 2**64
START = 1_704_067_200_000

PY_CASES = {
    # config
    "config-none": PyCase(
        lambda n: build(n, config=None), TypeError, ("config must be a mapping",)
    ),
    "config-key-not-text": PyCase(
        lambda n: build(n, config={"bootstrap.servers": n.brokers, 1: "x"}),
        TypeError,
        ("config keys must be str", "int 1"),
    ),
    "config-value-none": PyCase(
        configured(client__id=None), ValueError, ("invalid config: property 'client.id' is None",)
    ),
    "config-unknown-key": PyCase(
        configured(fetch__max__bytez="1"),
        ValueError,
        ("invalid config: 'fetch.max.bytez' is not a librdkafka property",),
    ),
    "config-refused-value": PyCase(
        configured(fetch__max__bytes="lots"),
        ValueError,
        ("invalid config: librdkafka refuses 'lots' for property 'fetch.max.bytes'",),
    ),
    "config-commit-as-bool": PyCase(
        configured(enable__auto__commit=True),
        ValueError,
        ("config property 'enable.auto.commit' is not allowed",),
    ),
    "config-brokers-empty": PyCase(
        bootstrap(""), ValueError, ("invalid config 'bootstrap.servers'", "an empty string")
    ),
    "config-brokers-without-port": PyCase(
        bootstrap("kafka"), ValueError, ("invalid config 'bootstrap.servers'", "without a port")
    ),
    "config-brokers-empty-entry": PyCase(
        bootstrap("a:1,,b:2"), ValueError, ("invalid config 'bootstrap.servers'", "empty entry")
    ),
    "config-brokers-unknown-protocol": PyCase(
        bootstrap("https://kafka:9092"),
        ValueError,
        ("invalid config 'bootstrap.servers'", f"PROTOCOL one of {PROTOCOLS}"),
    ),
    "config-brokers-unresolvable": PyCase(
        bootstrap("no-such-host.invalid:9092", timeout_ms=3000),
        KafkarsError,
        ("could not reach Kafka brokers no-such-host.invalid:9092",),
        within_s=5.0,
    ),
    # topics and SourceTopic
    "topics-none": PyCase(lambda n: build(n, topics=None), TypeError, ("topics must be a list",)),
    "topics-holding-none": PyCase(
        lambda n: build(n, topics=[None]), TypeError, ("topics must hold SourceTopic objects",)
    ),
    "topics-twice": PyCase(
        lambda n: build(
            n, topics=[SourceTopic.from_earliest(n.topic), SourceTopic.from_latest(n.topic)]
        ),
        ValueError,
        ("invalid topics: topic '$topic' is listed twice",),
    ),
    "name-none": PyCase(
        lambda n: SourceTopic.from_earliest(None), TypeError, ("name must be a str",)
    ),
    "name-wrong-type": PyCase(
        lambda n: SourceTopic.from_latest(42), TypeError, ("name must be a str", "int")
    ),
    "name-empty": PyCase(
        lambda n: SourceTopic.from_earliest(""),
        ValueError,
        ("invalid name: expected a topic name, found an empty string",),
    ),
    "name-illegal-character": PyCase(
        lambda n: build(n, topics=[SourceTopic.from_earliest("orders 2024")]),
        ValueError,
        ("invalid topics: topic name 'orders 2024' contains the character ' '", TOPIC_RULE),
    ),
    "name-a-list": PyCase(
        lambda n: build(n, topics=[SourceTopic.from_earliest(f"{n.topic},{n.topic}")]),
        ValueError,
        ("contains the character ','",),
    ),
    "name-too-long": PyCase(
        lambda n: build(n, topics=[SourceTopic.from_earliest("t" * 250)]),
        ValueError,
        ("at most 249 characters, found 250",),
    ),
    "policy-unknown": PyCase(
        lambda n: build(n, topics=[SourceTopic(n.topic, "newest")]),
        ValueError,
        (f"invalid policy: expected one of {POLICIES}, found 'newest'",),
    ),
    "timestamp-none": PyCase(
        lambda n: SourceTopic.from_timestamp(n.topic, None), TypeError, ("timestamp_ms",)
    ),
    "timestamp-float": PyCase(
        lambda n: SourceTopic.from_absolute_time(n.topic, 1.5e12), TypeError, ("timestamp_ms",)
    ),
    "timestamp-negative": PyCase(
        lambda n: SourceTopic.from_timestamp(n.topic, -1),
        ValueError,
        ("invalid timestamp_ms: expected a non-negative number, found -1",),
    ),
    "timestamp-too-big": PyCase(
        lambda n: SourceTopic.from_timestamp(n.topic, TOO_BIG),
        ValueError,
        ("invalid timestamp_ms: expected at most 9223372036854775807",),
    ),
    "lookback-none": PyCase(
        lambda n: SourceTopic.from_relative_time(n.topic, None), TypeError, ("lookback_ms",)
    ),
    "lookback-too-big": PyCase(
        lambda n: SourceTopic.from_relative_time(n.topic, TOO_BIG),
        ValueError,
        ("invalid lookback_ms: expected at most",),
    ),
    # cutoff_ms (None means now, so it has no NULL case)
    "cutoff-negative": PyCase(
        lambda n: build(n, cutoff_ms=-1),
        ValueError,
        ("invalid cutoff_ms: expected a non-negative number",),
    ),
    "cutoff-too-big": PyCase(
        lambda n: build(n, cutoff_ms=TOO_BIG), ValueError, ("invalid cutoff_ms: expected at most",)
    ),
    "cutoff-float": PyCase(lambda n: build(n, cutoff_ms=1.0), TypeError, ("cutoff_ms",)),
    "cutoff-before-start": PyCase(
        lambda n: build(
            n, topics=[SourceTopic.from_timestamp(n.topic, START + 2000)], cutoff_ms=START
        ),
        ValueError,
        ("invalid cutoff: the cutoff (2024-01-01T00:00:00Z) is before the start",),
    ),
    # batch_size, max_buffer_bytes, idle_timeout_ms, metadata_refresh_ms, timeout_ms
    "batch-size-none": PyCase(lambda n: build(n, batch_size=None), TypeError, ("batch_size",)),
    "batch-size-too-big": PyCase(
        lambda n: build(n, batch_size=TOO_BIG),
        ValueError,
        ("invalid batch_size: expected at most",),
    ),
    "max-buffer-bytes-none": PyCase(
        lambda n: build(n, max_buffer_bytes=None), TypeError, ("max_buffer_bytes",)
    ),
    "max-buffer-bytes-text": PyCase(
        lambda n: build(n, max_buffer_bytes="1MB"), TypeError, ("max_buffer_bytes", "str")
    ),
    "max-buffer-bytes-negative": PyCase(
        lambda n: build(n, max_buffer_bytes=-1),
        ValueError,
        ("invalid max_buffer_bytes: expected a positive number, found -1",),
    ),
    "max-buffer-bytes-too-big": PyCase(
        lambda n: build(n, max_buffer_bytes=TOO_BIG),
        ValueError,
        ("invalid max_buffer_bytes: expected at most",),
    ),
    "idle-timeout-none": PyCase(
        lambda n: build(n, idle_timeout_ms=None), TypeError, ("idle_timeout_ms",)
    ),
    "idle-timeout-text": PyCase(
        lambda n: build(n, idle_timeout_ms="1s"), TypeError, ("idle_timeout_ms", "str")
    ),
    "idle-timeout-too-big": PyCase(
        lambda n: build(n, idle_timeout_ms=TOO_BIG),
        ValueError,
        ("invalid idle_timeout_ms: expected at most",),
    ),
    "metadata-refresh-zero": PyCase(
        lambda n: build(n, metadata_refresh_ms=0),
        ValueError,
        ("invalid metadata_refresh_ms: expected a positive number, found 0",),
    ),
    "metadata-refresh-negative": PyCase(
        lambda n: build(n, metadata_refresh_ms=-500),
        ValueError,
        ("invalid metadata_refresh_ms: expected a positive number, found -500",),
    ),
    "metadata-refresh-none": PyCase(
        lambda n: build(n, metadata_refresh_ms=None),
        TypeError,
        ("metadata_refresh_ms must be an int, not NoneType",),
    ),
    "metadata-refresh-float": PyCase(
        lambda n: build(n, metadata_refresh_ms=0.5),
        TypeError,
        ("metadata_refresh_ms must be an int, not float",),
    ),
    "metadata-refresh-too-big": PyCase(
        lambda n: build(n, metadata_refresh_ms=TOO_BIG),
        ValueError,
        (f"invalid metadata_refresh_ms: expected at most 9223372036854775807, found {TOO_BIG}",),
    ),
    "timeout-none": PyCase(lambda n: build(n, timeout_ms=None), TypeError, ("timeout_ms",)),
    "timeout-float": PyCase(lambda n: build(n, timeout_ms=3.0), TypeError, ("timeout_ms", "float")),
    "timeout-zero": PyCase(
        lambda n: build(n, timeout_ms=0),
        ValueError,
        ("invalid timeout_ms: expected a positive number, found 0",),
    ),
    # librdkafka's timeouts are C ints of milliseconds: a longer one would expire at once.
    "timeout-too-long": PyCase(
        lambda n: build(n, timeout_ms=2**31),
        ValueError,
        ("invalid timeout_ms: expected at most 2147483647, found 2147483648",),
    ),
    # poll
    "poll-none": PyCase(polled(None), TypeError, ("timeout_ms",)),
    "poll-negative": PyCase(
        polled(-1), ValueError, ("invalid timeout_ms: expected a non-negative number, found -1",)
    ),
    "poll-too-big": PyCase(polled(TOO_BIG), ValueError, ("invalid timeout_ms: expected at most",)),
    "poll-closed": PyCase(closed_poll, RuntimeError, ("the ConsumerManager is closed",)),
}


def attempt(case: PyCase, names: Names) -> None:
    """Make ``case``'s call; a manager made after all (a failing case) is closed again."""
    made = case.call(names)
    if isinstance(made, ConsumerManager):
        made.close()


# Each bad argument raises the documented exception type (TypeError/ValueError for arguments,
# KafkarsError for Kafka, RuntimeError for a closed manager) naming the parameter, in time.
@pytest.mark.parametrize("case", PY_CASES.values(), ids=PY_CASES.keys())
def test_python_bad_input(names: Names, case: PyCase) -> None:
    started = time.monotonic()
    with pytest.raises(case.error) as raised:
        attempt(case, names)
    elapsed = time.monotonic() - started
    assert type(raised.value) is case.error, repr(raised.value)
    message = str(raised.value)
    for expected in case.expected:
        assert names.fill(expected) in message, message
    assert elapsed < case.within_s, elapsed


# --- Randomized ---------------------------------------------------------------------------------

#: The seed of the randomized test (KAFKARS_BAD_INPUT_SEED overrides it to explore); every
#: failure message shows it with the combination's number and text.
SEED = int(os.environ.get("KAFKARS_BAD_INPUT_SEED", "20251125"))
SQL_COMBINATIONS = 200
MANAGER_COMBINATIONS = 100
#: How often a random value is a valid one: with a few parameters given, about half of the
#: combinations are valid throughout.
VALID_SHARE = 0.85


@dataclass(frozen=True)
class Values:
    """Values a parameter may be given: valid ones, and wrong values, wrong types and NULL."""

    valid: tuple[Any, ...]
    invalid: tuple[Any, ...]

    def draw(self, rng: random.Random) -> Any:
        """A valid value with probability :data:`VALID_SHARE`, else an invalid one."""
        return rng.choice(self.valid if rng.random() < VALID_SHARE else self.invalid)


SQL_TOPICS = Values(("'$topic'",), ("'$topic,$topic'", "''", "'bad topic'", "'$missing'", "NULL"))
SQL_VALUES = {
    "brokers": Values(("'$brokers'",), ("NULL", "''", "'kafka'", "'http://$brokers'", "[1]")),
    "timeout": Values(
        ("INTERVAL 5 SECONDS", "INTERVAL 20 SECONDS"),
        ("INTERVAL 0 SECONDS", "INTERVAL '-1 second'", "NULL", "3", "INTERVAL 40 DAYS"),
    ),
    "config": Values(
        (
            "MAP {'client.id': 'kafkars-random'}",
            "MAP {'isolation.level': 'read_uncommitted'}",
            "MAP {'enable.auto.commit': 'false', 'fetch.max.bytes': '100000'}",
            "MAP {'bootstrap.servers': '$brokers'}",
        ),
        (
            "MAP {'no.such': 'x'}",
            "MAP {'enable.auto.commit': 'true'}",
            "MAP {'client.id': NULL}",
            "MAP {'': 'x'}",
            "NULL",
            "'client.id=x'",
        ),
    ),
    "policy": Values(("'earliest'", "'latest'"), ("'newest'", "'timestamp'", "NULL", "42")),
    "start": Values(
        ("TIMESTAMPTZ '2024-01-01 00:00:01+00'", "'2023-06-01'", "'infinity'::TIMESTAMPTZ"),
        ("TIMESTAMPTZ '1960-01-01 00:00:00+00'", "NULL", "42"),
    ),
    "lookback": Values(("INTERVAL 1 HOUR", "INTERVAL 1000 DAYS"), ("INTERVAL '-1 hour'", "5")),
    "cutoff": Values(
        (
            "TIMESTAMPTZ '2024-01-01 00:00:02+00'",
            "'infinity'::TIMESTAMPTZ",
            "TIMESTAMPTZ '2023-01-01 00:00:00+00'",
        ),
        ("'-infinity'::TIMESTAMPTZ", "NULL", "true"),
    ),
    "partitions": Values(
        ("[0]", "[1]", "[1, 0]"), ("[2]", "[]", "[-1]", "[0, 0]", "[NULL]", "NULL", "1")
    ),
    "start_offsets": Values(
        ("MAP {0: 0}", "MAP {1: -2, 0: -1}", "[{'topic': '$topic', 'partition': 0, 'offset': 0}]"),
        ("MAP {5: 0}", "MAP {0: -3}", "MAP {0: NULL}", "NULL", "'0=1'", "MAP {0: 10000}"),
    ),
    "stop_offsets": Values(("MAP {0: -1}",), ("MAP {0: -2}", "MAP {1: 10000}", "NULL", "[1]")),
    "on_missing": Values(("'fail'", "'skip'"), ("'ignore'", "NULL", "1")),
    "split_size": Values(("1", "1000"), ("0", "-5", "NULL", "'big'")),
    "follow": Values(("false", "true"), ("NULL", "'maybe'")),
    "idle_timeout": Values(("INTERVAL 100 MILLISECONDS",), ("INTERVAL '-1 second'", "NULL", "5")),
    "metadata_refresh": Values(
        ("INTERVAL 500 MILLISECONDS", "INTERVAL 1 HOUR"),
        ("INTERVAL 0 SECONDS", "INTERVAL '-1 second'", "NULL", "5"),
    ),
    "max_buffer_bytes": Values(
        ("65536", "1048576", "9223372036854775807"), ("1000", "-1", "NULL", "'1MB'")
    ),
}
FUNCTION_PARAMETERS = {
    "kafka_scan": list(SQL_VALUES),
    "kafka_offsets": [
        *["brokers", "timeout", "config"],
        *["policy", "start", "lookback", "cutoff", "partitions"],
        *["start_offsets", "stop_offsets", "on_missing", "split_size"],
    ],
    "kafka_topics": ["brokers", "timeout", "config"],
    "kafka_partitions": ["brokers", "timeout", "config"],
}


def random_sql(rng: random.Random) -> str:
    """A query over one table function with some parameters given random values. Brokers
    that may not answer come with a short timeout; a followed scan ends at its first row."""
    function = rng.choice(list(FUNCTION_PARAMETERS))
    arguments = [] if function == "kafka_topics" else [SQL_TOPICS.draw(rng)]
    values = {
        parameter: SQL_VALUES[parameter].draw(rng)
        for parameter in FUNCTION_PARAMETERS[function]
        if parameter == "brokers" or rng.random() < 0.3
    }
    if values["brokers"] != "'$brokers'":
        values["timeout"] = "INTERVAL 1 SECOND"
    arguments += [f"{parameter} := {value}" for parameter, value in values.items()]
    limit = " LIMIT 1" if values.get("follow") == "true" else ""
    return f"SELECT * FROM {function}({', '.join(arguments)}){limit}"


def random_manager_call(rng: random.Random, names: Names) -> tuple[str, Callable[[], object]]:
    """A ConsumerManager made (and polled) with random arguments: its description, and the
    call."""
    name = Values((names.topic,), (names.missing, "", "bad topic", None)).draw(rng)
    policy, argument = rng.choice(
        [
            ("from_earliest", None),
            ("from_latest", None),
            ("from_timestamp", Values((START + 1000, 0), (-1, None, 1.5, TOO_BIG)).draw(rng)),
            ("from_relative_time", Values((3_600_000, 10**12), (-1, TOO_BIG)).draw(rng)),
        ]
    )
    wrong = Values((None,), (SourceTopic(names.topic, "newest"), names.topic, None)).draw(rng)
    servers = Values((names.brokers,), ("", "kafka", "https://kafka:9092", "127.0.0.1:1"))
    properties = Values(
        (
            ("client.id", "kafkars-random"),
            ("enable.auto.commit", False),
            ("group.id", "kafkars-random-group"),
        ),
        (("enable.auto.commit", True), ("no.such", "x"), ("client.id", None)),
    )
    brokers = servers.draw(rng)
    config: object = dict(
        [("bootstrap.servers", brokers)] + [properties.draw(rng) for _ in range(rng.randrange(3))]
    )
    config = Values((config,), (None, f"bootstrap.servers={names.brokers}")).draw(rng)
    options = {
        "cutoff_ms": Values((None, START + 1500), (-1, 1.5, TOO_BIG)),
        "batch_size": Values((1, 3, 10_000), (0, -1, None, "10", TOO_BIG)),
        "max_buffer_bytes": Values((65_536, 1 << 20), (1000, 0, None, TOO_BIG)),
        "idle_timeout_ms": Values((0, 100), (-1, None, TOO_BIG)),
        "metadata_refresh_ms": Values((100, 5000), (0, -1, None, TOO_BIG)),
        "timeout_ms": Values((5000,), (0, None, 2**31, "3s")),
    }
    arguments = {key: value.draw(rng) for key, value in options.items() if rng.random() < 0.3}
    if brokers != names.brokers:
        arguments["timeout_ms"] = 1000
    polls = [Values((0, 50, 100), (-1, None)).draw(rng) for _ in range(rng.randrange(1, 3))]
    source = f"SourceTopic.{policy}({name!r}{'' if argument is None else f', {argument!r}'})"
    description = (
        f"ConsumerManager({config!r}, [{source if wrong is None else repr(wrong)}], "
        f"**{arguments!r}), "
        f"polled with {polls}"
    )

    def run() -> object:
        if wrong is not None:
            selection = [wrong]
        else:
            make = getattr(SourceTopic, policy)
            selection = [make(name) if argument is None else make(name, argument)]
        with ConsumerManager(config, selection, **arguments) as manager:  # type: ignore[arg-type]
            rows = sum(manager.poll(timeout_ms=wait).num_rows for wait in polls)  # type: ignore[arg-type]
            manager.partition_state()
            return rows, manager.is_live()

    return description, run


def outcome(
    run: Callable[[], object],
    clean: type[Exception] | tuple[type[Exception], ...],
    where: str,
) -> Exception | None:
    """None when ``run`` returns, the error when it raises a ``clean`` one; anything else it
    raises (another exception, a pyo3 panic) fails the test, saying ``where``."""
    try:
        run()
    except clean as error:
        return error
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        raise AssertionError(f"{where}: {error!r}") from error
    return None


# Many random combinations of valid and invalid parameter values, through SQL and through
# ConsumerManager: each gives rows or a clean error (duckdb.Error other than an internal or
# fatal one; ValueError, TypeError or KafkarsError), never a crash, never a hang past its
# timeout; the database answers after each.
def test_random_parameter_combinations(topics: TopicFactory, brokers: str) -> None:
    rng = random.Random(SEED)
    topic = topics.create("random", partitions=2, messages=round_robin(6, 2))
    names = Names(topic=topic, missing=topics.unique_name("missing"), brokers=brokers)
    con = kafkars.connect()
    heartbeat = Heartbeat(topics, topic, 2, period_s=0.5)
    outcomes: dict[str, int] = {"rows": 0, "errors": 0}
    try:
        for number in range(SQL_COMBINATIONS):
            sql = names.fill(random_sql(rng))
            where = f"seed {SEED}, SQL combination {number}: {sql}"
            error = outcome(lambda sql=sql: fetch(con, sql, limit_s=15), duckdb.Error, where)
            fatal = (duckdb.InternalException, duckdb.FatalException)
            assert not isinstance(error, fatal), f"{where}: {error!r}"
            assert error is None or str(error).strip(), where
            outcomes["rows" if error is None else "errors"] += 1
            assert answers(con), where
        for number in range(MANAGER_COMBINATIONS):
            description, run = random_manager_call(rng, names)
            where = f"seed {SEED}, manager combination {number}: {description}"
            started = time.monotonic()
            error = outcome(run, (ValueError, TypeError, KafkarsError), where)
            assert time.monotonic() - started < 10, where
            assert error is None or str(error).strip(), where
            outcomes["rows" if error is None else "errors"] += 1
        assert answers(con)
    finally:
        heartbeat.close()
        con.close()
    # Both kinds of outcome occur often: the combinations are neither all valid nor all not.
    assert min(outcomes.values()) > 30, outcomes
