"""Reading through a SASL_SSL listener (SCRAM-SHA-512 over TLS, a CA generated for the test
session), failing clearly on a wrong password or an unknown CA, and never showing the password:
not in errors, process output, EXPLAIN, ``duckdb_functions()`` or the DuckDB CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import duckdb
import pytest

import kafkars
from kafkars import ConsumerManager, KafkarsError, SourceTopic
from testkit.brokers import REPO_ROOT
from testkit.kafka import TopicFactory, round_robin
from testkit.scan import (
    as_stored,
    batch_records,
    expected_offsets,
    expected_scan,
    fetch,
    poll_until_live,
    scan,
)
from testkit.secure_broker import (
    SecureBroker,
    SqlExpression,
    secure_broker,
    sql_map,
)

#: The `timeout` the failing cases give; errors must come within it (plus slack for the
#: client's start and a loaded machine).
TIMEOUT_S = 5
SLACK_S = 2.0

#: A wrong password, as distinctive as the right one.
WRONG_PASSWORD = "pw-wrong-5e1f0c7a9d3b"

PARTITIONS = 3
MESSAGES = round_robin(30, PARTITIONS)


@pytest.fixture(scope="session")
def secure() -> Iterator[SecureBroker]:
    """The private SASL_SSL broker, with fresh certificates and user for this session."""
    with secure_broker() as broker:
        yield broker


@pytest.fixture
def secure_topics(secure: SecureBroker, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Topics on the SASL_SSL broker (created through its PLAINTEXT listener)."""
    factory = TopicFactory(brokers=secure.plaintext, prefix=f"t-{request.node.name}")
    yield factory
    factory.delete_all()


@pytest.fixture
def topic(secure_topics: TopicFactory) -> str:
    """A topic of :data:`PARTITIONS` partitions holding :data:`MESSAGES`."""
    return secure_topics.create("sec", partitions=PARTITIONS, messages=MESSAGES)


def scan_call(topic: str, config: dict[str, str], timeout_s: int | None = None) -> str:
    """A ``kafka_scan(...)`` call reading ``topic`` with ``config``."""
    timeout = f", timeout := INTERVAL {timeout_s} SECONDS" if timeout_s else ""
    return f"kafka_scan('{topic}', config := {sql_map(config)}{timeout})"


def assert_no_secret(text: str, secure: SecureBroker) -> None:
    """Neither the right nor the wrong password occurs in ``text``."""
    for secret in (secure.password, WRONG_PASSWORD):
        assert secret not in text, f"a password leaked into: {text}"


def timed_error(action: Callable[[], object]) -> tuple[BaseException, float]:
    """Run ``action``, which must fail; return its exception and how long it took."""
    started = time.monotonic()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - each caller checks type and text
        action()
    return caught.value, time.monotonic() - started


def sql_error(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, float]:
    """The text of the error ``sql`` fails with, and how long it took."""
    error, elapsed = timed_error(lambda: fetch(con, sql))
    assert isinstance(error, duckdb.Error), repr(error)
    return str(error), elapsed


def manager_error(
    config: dict[str, str], topic: str, **options: int
) -> tuple[BaseException, float]:
    """The exception creating a ConsumerManager for ``topic`` with ``config`` raises."""
    return timed_error(
        lambda: ConsumerManager(config, [SourceTopic.from_earliest(topic)], **options)
    )


# The listener refuses a client that speaks no TLS: what reads below, reads through SASL_SSL.
def test_listener_needs_tls(con: duckdb.DuckDBPyConnection, secure: SecureBroker) -> None:
    text, elapsed = sql_error(
        con,
        f"SELECT * FROM kafka_topics(brokers := '{secure.sasl_ssl}', "
        f"timeout := INTERVAL {TIMEOUT_S} SECONDS)",
    )
    assert f"could not reach Kafka brokers {secure.sasl_ssl} within {TIMEOUT_S}s" in text
    assert elapsed < TIMEOUT_S + SLACK_S


# kafka_scan reads every row, in order, through SASL_SSL with the credentials in `config`.
def test_scan_through_sasl_ssl(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str
) -> None:
    expected = expected_scan(as_stored(topic, PARTITIONS, MESSAGES))
    assert scan(con, scan_call(topic, secure.config())) == expected


# kafka_offsets, kafka_topics and kafka_partitions answer through SASL_SSL too.
def test_metadata_functions_through_sasl_ssl(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str
) -> None:
    config = sql_map(secure.config())
    log = as_stored(topic, PARTITIONS, MESSAGES)
    assert fetch(
        con, f"SELECT * EXCLUDE (note) FROM kafka_offsets('{topic}', config := {config})"
    ) == expected_offsets(log)
    assert fetch(
        con, f"SELECT * FROM kafka_topics(config := {config}) WHERE topic = '{topic}'"
    ) == [(topic, PARTITIONS, 1, False)]
    assert fetch(con, f"SELECT * FROM kafka_partitions('{topic}', config := {config})") == [
        (p, 1, 0, len(log[(topic, p)]), [1], [1]) for p in range(PARTITIONS)
    ]


# ConsumerManager reads the same rows through SASL_SSL with the same config dict.
def test_manager_through_sasl_ssl(secure: SecureBroker, topic: str) -> None:
    expected = expected_scan(as_stored(topic, PARTITIONS, MESSAGES))
    with ConsumerManager(secure.config(), [SourceTopic.from_earliest(topic)]) as manager:
        polled = poll_until_live(manager)
        assert polled.records == expected
        assert batch_records(manager.poll(timeout_ms=100)) == []


def auth_failure(secure: SecureBroker, mechanism: str = "SCRAM-SHA-512") -> str:
    """The start of the error a refused login gives."""
    return (
        f"authentication as '{secure.username}' ({mechanism}) with Kafka brokers "
        f"{secure.sasl_ssl} failed: the brokers refused the credentials"
    )


@dataclass(frozen=True)
class SqlCall:
    """A kafkars function call; ``{config}`` and ``{topic}`` are filled in."""

    name: str
    sql: str


SQL_CALLS = [
    SqlCall("kafka_scan", "SELECT * FROM kafka_scan('{topic}', config := {config}{timeout})"),
    SqlCall("kafka_offsets", "SELECT * FROM kafka_offsets('{topic}', config := {config}{timeout})"),
    SqlCall("kafka_topics", "SELECT * FROM kafka_topics(config := {config}{timeout})"),
    SqlCall(
        "kafka_partitions", "SELECT * FROM kafka_partitions('{topic}', config := {config}{timeout})"
    ),
]


def render(call: SqlCall, topic: str, config: dict[str, str]) -> str:
    """``call`` as SQL reading ``topic`` with ``config`` and :data:`TIMEOUT_S`."""
    return call.sql.format(
        topic=topic,
        config=sql_map(config),
        timeout=f", timeout := INTERVAL {TIMEOUT_S} SECONDS",
    )


# A wrong password fails every function with an authentication error, within `timeout`.
@pytest.mark.parametrize("call", SQL_CALLS, ids=lambda call: call.name)
def test_wrong_password_sql(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str, call: SqlCall
) -> None:
    text, elapsed = sql_error(con, render(call, topic, secure.config(password=WRONG_PASSWORD)))
    assert f"{call.name}: {auth_failure(secure)}" in text
    assert "check config 'sasl.mechanism', 'sasl.username' and 'sasl.password'" in text
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(text, secure)
    # The connection stays usable.
    assert fetch(con, "SELECT 42") == [(42,)]


# A refused login ends the wait at once: it does not run into a long timeout.
def test_wrong_password_fails_before_timeout(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str
) -> None:
    config = sql_map(secure.config(password=WRONG_PASSWORD))
    text, elapsed = sql_error(
        con,
        f"SELECT * FROM kafka_scan('{topic}', config := {config}, timeout := INTERVAL 60 SECONDS)",
    )
    assert auth_failure(secure) in text
    assert elapsed < 15, elapsed


# A mechanism the user has no credentials for is refused the same way.
def test_wrong_mechanism_sql(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str
) -> None:
    config = {**secure.config(), "sasl.mechanism": "SCRAM-SHA-256"}
    text, elapsed = sql_error(con, render(SQL_CALLS[0], topic, config))
    assert auth_failure(secure, "SCRAM-SHA-256") in text
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(text, secure)


# ConsumerManager: a wrong password raises KafkarsError with the same text, within timeout_ms.
def test_wrong_password_manager(secure: SecureBroker, topic: str) -> None:
    error, elapsed = manager_error(
        secure.config(password=WRONG_PASSWORD), topic, timeout_ms=TIMEOUT_S * 1000
    )
    assert isinstance(error, KafkarsError), repr(error)
    assert auth_failure(secure) in str(error)
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(str(error), secure)


#: Certificate verification is on by default: no CA (only the system's trust store, which
#: does not know ours) and a CA that signed nothing the broker holds are both refused.
UNKNOWN_CA = {"system_trust_store": None, "other_ca": "other"}

TLS_FAILURE = "TLS (SSL) handshake with Kafka brokers {brokers} failed: the brokers' certificate"


def unknown_ca_config(secure: SecureBroker, case: str) -> dict[str, str]:
    """The user's config with ``ssl.ca.location`` left out or naming the other CA."""
    ca = None if UNKNOWN_CA[case] is None else secure.other_ca_location
    return secure.config(ca_location=ca)


# An unknown CA is an error naming TLS, the certificate and ssl.ca.location, for every
# function, within `timeout`.
@pytest.mark.parametrize("case", UNKNOWN_CA)
@pytest.mark.parametrize("call", SQL_CALLS, ids=lambda call: call.name)
def test_unknown_ca_sql(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str, call: SqlCall, case: str
) -> None:
    text, elapsed = sql_error(con, render(call, topic, unknown_ca_config(secure, case)))
    assert f"{call.name}: {TLS_FAILURE.format(brokers=secure.sasl_ssl)}" in text
    assert "certificate verification is on: set config 'ssl.ca.location'" in text
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(text, secure)


# ConsumerManager refuses an unknown CA the same way.
@pytest.mark.parametrize("case", UNKNOWN_CA)
def test_unknown_ca_manager(secure: SecureBroker, topic: str, case: str) -> None:
    error, elapsed = manager_error(
        unknown_ca_config(secure, case), topic, timeout_ms=TIMEOUT_S * 1000
    )
    assert isinstance(error, KafkarsError), repr(error)
    assert TLS_FAILURE.format(brokers=secure.sasl_ssl) in str(error)
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(str(error), secure)


#: Stands for the user's password in :data:`MISUSES`.
PASSWORD = "<password>"


@dataclass(frozen=True)
class Misuse:
    """A call with the right password in its config that fails for another reason: ``topic``
    replaces the test topic when given, ``extra`` adds to the config (:data:`PASSWORD` in a
    value stands for the password), ``expected`` is part of the error."""

    name: str
    extra: dict[str, str]
    expected: str
    topic: str | None = None

    def config(self, secure: SecureBroker) -> dict[str, str]:
        """The user's working config with :attr:`extra` added."""
        extra = {k: v.replace(PASSWORD, secure.password) for k, v in self.extra.items()}
        return {**secure.config(), **extra}


MISUSES = [
    Misuse("bad topic name", {}, "topic", topic="no such/topic"),
    Misuse("unknown topic", {}, "does not exist", topic="kafkars-no-such-topic"),
    Misuse("unknown property", {"no.such.property": "x"}, "no.such.property"),
    Misuse("forbidden property", {"enable.auto.commit": "true"}, "enable.auto.commit"),
    Misuse("bad value", {"sasl.mechanism": "NO-SUCH-MECHANISM"}, "NO-SUCH-MECHANISM"),
    # The password as the value of other secret properties, in an error about them.
    Misuse(
        "key password",
        {"ssl.key.password": PASSWORD, "ssl.key.location": "/nonexistent/key.pem"},
        "ssl.key.location",
    ),
    Misuse(
        "keystore password",
        {"ssl.keystore.password": PASSWORD, "ssl.keystore.location": "/nonexistent/ks.p12"},
        "ssl.keystore.location",
    ),
]


# Whatever else goes wrong, the error shows no password, in SQL.
@pytest.mark.parametrize("misuse", MISUSES, ids=lambda misuse: misuse.name)
def test_password_absent_from_errors_sql(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str, misuse: Misuse
) -> None:
    call = scan_call(misuse.topic or topic, misuse.config(secure), TIMEOUT_S)
    text, elapsed = sql_error(con, f"SELECT * FROM {call}")
    assert misuse.expected in text
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(text, secure)


# ... and in Python.
@pytest.mark.parametrize("misuse", MISUSES, ids=lambda misuse: misuse.name)
def test_password_absent_from_errors_manager(
    secure: SecureBroker, topic: str, misuse: Misuse
) -> None:
    error, elapsed = manager_error(
        misuse.config(secure), misuse.topic or topic, timeout_ms=TIMEOUT_S * 1000
    )
    assert isinstance(error, ValueError | KafkarsError), repr(error)
    assert misuse.expected in str(error)
    assert elapsed < TIMEOUT_S + SLACK_S, elapsed
    assert_no_secret(str(error), secure)
    assert_no_secret(repr(error), secure)


def explain_text(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Everything an EXPLAIN statement returns, as one text."""
    return "\n".join(str(value) for row in fetch(con, sql) for value in row)


# EXPLAIN and EXPLAIN ANALYZE show the scan, never its config's password.
@pytest.mark.parametrize("call", SQL_CALLS, ids=lambda call: call.name)
def test_password_absent_from_explain(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str, call: SqlCall
) -> None:
    sql = render(call, topic, secure.config())
    plan = explain_text(con, f"EXPLAIN {sql}")
    analyzed = explain_text(con, f"EXPLAIN ANALYZE {sql}")
    for text in (plan, analyzed):
        assert call.name.upper() in text, text
        assert_no_secret(text, secure)
    assert "Total Time" in analyzed, analyzed


# duckdb_functions() lists the functions and their parameters, not values given to them.
def test_password_absent_from_duckdb_functions(
    con: duckdb.DuckDBPyConnection, secure: SecureBroker, topic: str
) -> None:
    assert len(scan(con, scan_call(topic, secure.config()))) == len(MESSAGES)
    rows = fetch(con, "SELECT * FROM duckdb_functions() WHERE function_name LIKE 'kafka_%'")
    names = {name for (name,) in fetch(con, "SELECT function_name FROM duckdb_functions()")}
    assert {"kafka_scan", "kafka_offsets", "kafka_topics", "kafka_partitions"} <= names
    assert_no_secret(repr(rows), secure)
    assert_no_secret(repr(fetch(con, "SELECT * FROM duckdb_functions()")), secure)


#: A script that reads through SASL_SSL with librdkafka's debug output switched on, and fails
#: on a wrong password, in SQL and through ConsumerManager; it prints what it got.
CHILD = textwrap.dedent(
    """
    import json, sys
    import kafkars
    from kafkars import ConsumerManager, SourceTopic
    from testkit.secure_broker import sql_map

    topic, good, bad = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    con = kafkars.connect()
    rows = con.sql(f"SELECT count(*) FROM kafka_scan('{topic}', config := {sql_map(good)})")
    print("scan rows", rows.fetchall()[0][0])
    try:
        con.sql(f"SELECT * FROM kafka_scan('{topic}', config := {sql_map(bad)})").fetchall()
    except Exception as error:
        print("scan error", error)
    with ConsumerManager(good, [SourceTopic.from_earliest(topic)]) as manager:
        count = 0
        while not manager.is_live():
            count += manager.poll(timeout_ms=200).num_rows
        print("manager rows", count)
    try:
        ConsumerManager(bad, [SourceTopic.from_earliest(topic)])
    except Exception as error:
        print("manager error", error)
    """
)


# Nothing the process prints, librdkafka's debug output included, shows the password.
def test_password_absent_from_process_output(secure: SecureBroker, topic: str) -> None:
    debug = {"debug": "all", "log_level": "7"}
    good = {**secure.config(), **debug}
    bad = {**secure.config(password=WRONG_PASSWORD), **debug}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, topic, json.dumps(good), json.dumps(bad)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"scan rows {len(MESSAGES)}"
    assert lines[1].startswith("scan error")
    assert auth_failure(secure) in lines[1]
    assert lines[2] == f"manager rows {len(MESSAGES)}"
    assert lines[3].startswith("manager error")
    assert auth_failure(secure) in lines[3]
    assert_no_secret(result.stdout, secure)
    assert_no_secret(result.stderr, secure)


def run_cli(
    cli: str, statements: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``statements`` in the DuckDB shell, one a line (the shell abandons the rest of a
    line after an error), with the extension loaded and ``env`` added to the environment."""
    script = "".join(f"{line}\n" for line in [f"LOAD '{kafkars.extension_path()}';", *statements])
    return subprocess.run(
        [cli, "-unsigned", "-csv"],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def cli_statements(topic: str, good: str, bad: str) -> list[str]:
    """A count through SASL_SSL, its EXPLAIN and EXPLAIN ANALYZE, a wrong password, and a
    last statement showing the shell went on; ``good`` and ``bad`` are config MAPs."""
    count = f"SELECT count(*) AS n FROM kafka_scan('{topic}', config := {good});"
    return [
        count,
        f"EXPLAIN {count}",
        f"EXPLAIN ANALYZE {count}",
        f"SELECT * FROM kafka_scan('{topic}', config := {bad});",
        "SELECT 'still here' AS status;",
    ]


def check_cli_run(result: subprocess.CompletedProcess[str], secure: SecureBroker) -> None:
    """The shell counted the rows, explained the scan, reported the refused login and went
    on."""
    lines = result.stdout.splitlines()
    assert lines[:2] == ["n", str(len(MESSAGES))], result.stdout + result.stderr
    assert "KAFKA_SCAN" in result.stdout
    assert "Total Time" in result.stdout
    assert lines[-2:] == ["status", "still here"], result.stdout
    assert auth_failure(secure) in result.stderr


# The DuckDB shell, with the password kept out of the statements (an environment variable
# read into a DuckDB variable): no output of the shell shows it, EXPLAIN ANALYZE included.
@pytest.mark.cli
def test_password_absent_from_cli(duckdb_cli: str, secure: SecureBroker, topic: str) -> None:
    good = sql_map(secure.config(password=SqlExpression("getvariable('kafka_password')")))
    bad = sql_map(secure.config(password=SqlExpression("getvariable('wrong_password')")))
    result = run_cli(
        duckdb_cli,
        [
            "SET VARIABLE kafka_password = getenv('KAFKARS_TEST_PASSWORD');",
            "SET VARIABLE wrong_password = getenv('KAFKARS_TEST_WRONG_PASSWORD');",
            *cli_statements(topic, good, bad),
        ],
        env={
            "KAFKARS_TEST_PASSWORD": secure.password,
            "KAFKARS_TEST_WRONG_PASSWORD": WRONG_PASSWORD,
        },
    )
    check_cli_run(result, secure)
    assert_no_secret(result.stdout, secure)
    assert_no_secret(result.stderr, secure)


# With the password written into the statement, the shell's output shows it only where
# DuckDB's EXPLAIN ANALYZE repeats the statement as typed: never in a result, a plan or an
# error of kafkars.
@pytest.mark.cli
def test_password_in_statement_only_echoed_by_cli(
    duckdb_cli: str, secure: SecureBroker, topic: str
) -> None:
    good, bad = sql_map(secure.config()), sql_map(secure.config(password=WRONG_PASSWORD))
    statements = cli_statements(topic, good, bad)
    result = run_cli(duckdb_cli, statements)
    check_cli_run(result, secure)
    echoed = [line for line in result.stdout.splitlines() if secure.password in line]
    assert echoed == [statements[2]], echoed
    assert_no_secret(result.stderr, secure)
