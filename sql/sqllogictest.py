"""A small SQLLogicTest runner for the kafkars extension, run by pytest.

It reads DuckDB's dialect of the format (records separated by blank lines):

``statement ok`` / ``statement error``
    The SQL that follows must succeed, or fail. After ``----``, an error's expected message:
    the actual message must contain it.
``query <types> [rowsort]``
    The SQL that follows must return exactly the rows after ``----``, one line per row,
    values separated by tabs (NULL as ``NULL``, booleans as ``true``/``false``, lists as
    ``[1, 2]``). ``<types>`` has one letter per column (``I``, ``T``, ``R``, ``B``); with
    ``rowsort`` both sides are sorted first.
``require kafkars``
    Load the extension into the test's connection.

Two kafkars additions:

``topic <name> partitions=<n> messages=<m>``
    Create a uniquely named topic with ``m`` messages spread round-robin over ``n``
    partitions (see :func:`testkit.kafka.round_robin`); ``${name}`` then stands for it.
``${BROKERS}``
    The test broker's address.

And one for typed payloads, written by confluent-kafka's own serializers:

``produce <name> format=<avro|jsonschema|json|raw> [partitions=<n>]``
    Create a uniquely named topic (``${name}``) and write the values listed after ``----``,
    one JSON value per line (``null``: a tombstone), value ``i`` into partition ``i % n`` at
    2024-01-01 00:00:00 + ``i`` s. The lines before ``----`` are the schema: Avro JSON for
    ``avro`` (framed by ``AvroSerializer``), a JSON Schema for ``jsonschema`` (framed by
    ``JSONSerializer``); none for ``json`` (the JSON text as bytes) and ``raw`` (each value
    must be a JSON string, written as its UTF-8 bytes). ``${REGISTRY}`` is the registry's URL.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

import kafkars
from testkit.kafka import TopicFactory, round_robin
from testkit.registry import REGISTRY_URL, RegistryProducer

#: 2024-01-01 00:00:00 UTC in ms: produced message ``i`` is stamped ``i`` seconds after it.
EPOCH_2024_MS = 1_704_067_200_000


class SQLLogicTestFailure(AssertionError):
    """Raised when a record's outcome differs from what the file expects."""


@dataclass
class Record:
    """One record of a test file."""

    line: int
    header: list[str]
    sql: str
    expected: list[str] | None


def parse(path: Path) -> Iterator[Record]:
    """Split a test file into records, skipping comments."""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].strip() or lines[index].startswith("#"):
            index += 1
            continue
        start = index
        block: list[str] = []
        while index < len(lines) and lines[index].strip():
            if not lines[index].startswith("#"):
                block.append(lines[index])
            index += 1
        header = block[0].split()
        body = block[1:]
        expected = None
        if "----" in body:
            separator = body.index("----")
            body, expected = body[:separator], body[separator + 1 :]
        yield Record(line=start + 1, header=header, sql="\n".join(body), expected=expected)


def render(value: object, nested: bool = False) -> str:
    """A value as DuckDB's own runner prints it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(item, nested=True) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"'{key}': {render(item, nested=True)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, bytes | bytearray | memoryview):
        return "".join(
            chr(byte) if 32 <= byte < 127 and byte != ord("\\") else f"\\x{byte:02X}"
            for byte in bytes(value)
        )
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, str) and value == "" and not nested:
        return "(empty)"
    return str(value)


class SQLLogicTest:
    """Runs one test file against a fresh in-memory database."""

    def __init__(self, path: Path, topics: TopicFactory) -> None:
        self.path = path
        self.topics = topics
        self.variables = {"BROKERS": topics.brokers, "REGISTRY": REGISTRY_URL}
        self.con = duckdb.connect(config={"allow_unsigned_extensions": True})

    def run(self) -> int:
        """Run every record; return how many ran."""
        count = 0
        try:
            for record in parse(self.path):
                self.run_record(record)
                count += 1
        finally:
            self.con.close()
        return count

    def fail(self, record: Record, message: str) -> SQLLogicTestFailure:
        return SQLLogicTestFailure(f"{self.path}:{record.line}: {message}\n{record.sql}")

    def substitute(self, text: str) -> str:
        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.variables:
                raise KeyError(f"{self.path}: ${{{name}}} is not defined")
            return self.variables[name]

        return re.sub(r"\$\{(\w+)\}", lookup, text)

    def run_record(self, record: Record) -> None:
        kind = record.header[0]
        if kind == "require":
            if record.header[1:] != ["kafkars"]:
                raise self.fail(record, f"unknown requirement {record.header[1:]}")
            kafkars.load_extension(self.con)
        elif kind == "topic":
            self.create_topic(record)
        elif kind == "produce":
            self.produce(record)
        elif kind == "statement":
            self.run_statement(record)
        elif kind == "query":
            self.run_query(record)
        else:
            raise self.fail(record, f"unknown record type {kind!r}")

    def create_topic(self, record: Record) -> None:
        name, *options = record.header[1:]
        settings = dict(option.split("=", 1) for option in options)
        partitions = int(settings.pop("partitions", "1"))
        messages = int(settings.pop("messages", "0"))
        if settings:
            raise self.fail(record, f"unknown topic options {sorted(settings)}")
        self.variables[name] = self.topics.create(
            hint=name, partitions=partitions, messages=round_robin(messages, partitions)
        )

    def produce(self, record: Record) -> None:
        name, *options = record.header[1:]
        settings = dict(option.split("=", 1) for option in options)
        partitions = int(settings.pop("partitions", "1"))
        kind = settings.pop("format", None)
        if settings or kind not in {"avro", "jsonschema", "json", "raw"}:
            raise self.fail(record, f"bad produce options {options}")
        # Avro decimals want Decimal: JSON numbers with a fraction are read as such (fastavro
        # writes a Decimal to a float/double field too).
        parse_float = decimal.Decimal if kind == "avro" else float
        values = [json.loads(line, parse_float=parse_float) for line in record.expected or []]
        schema = record.sql
        topic = self.topics.create(hint=name, partitions=partitions)
        producer = RegistryProducer(brokers=self.topics.brokers)
        for partition in range(partitions):
            indexes = list(range(partition, len(values), partitions))
            chosen = [values[i] for i in indexes]
            stamps = [EPOCH_2024_MS + i * 1000 for i in indexes]
            if not chosen:
                continue
            if kind == "avro":
                producer.produce_avro(topic, schema, chosen, partition=partition, timestamps=stamps)
            elif kind == "jsonschema":
                producer.produce_json(topic, schema, chosen, partition=partition, timestamps=stamps)
            else:
                encoded = [
                    None if v is None else (v if kind == "raw" else json.dumps(v)) for v in chosen
                ]
                producer.produce_raw(topic, encoded, partition=partition, timestamps=stamps)
        self.variables[name] = topic

    def run_statement(self, record: Record) -> None:
        sql = self.substitute(record.sql)
        mode = record.header[1]
        try:
            self.con.execute(sql)
        except duckdb.Error as error:
            if mode == "error":
                expected = self.substitute("\n".join(record.expected or []))
                if expected and expected not in str(error):
                    raise self.fail(
                        record, f"expected an error containing\n  {expected}\ngot\n  {error}"
                    ) from error
                return
            raise self.fail(record, f"statement failed: {error}") from error
        if mode == "error":
            raise self.fail(record, "statement succeeded but an error was expected")

    def run_query(self, record: Record) -> None:
        sql = self.substitute(record.sql)
        types = record.header[1]
        try:
            relation = self.con.sql(sql)
            rows = relation.fetchall()
        except duckdb.Error as error:
            raise self.fail(record, f"query failed: {error}") from error
        if len(relation.columns) != len(types):
            raise self.fail(
                record, f"query returns {len(relation.columns)} columns, header says {types}"
            )
        actual = ["\t".join(render(value) for value in row) for row in rows]
        expected = [self.substitute(line) for line in record.expected or []]
        if "rowsort" in record.header[2:]:
            actual.sort()
            expected.sort()
        if actual != expected:
            raise self.fail(
                record,
                "wrong result\nexpected:\n"
                + "\n".join(expected)
                + "\nactual:\n"
                + "\n".join(actual),
            )
