"""kafkars: read Apache Kafka topics into DuckDB and Arrow, in timestamp order.

The package carries a DuckDB extension (``kafka_scan``, ``kafka_offsets``, ``kafka_topics``,
``kafka_partitions``) with helpers to load it, and :class:`ConsumerManager`, which streams
topics as ``pyarrow.RecordBatch``es::

    import kafkars

    con = kafkars.connect()
    con.sql("SELECT count(*) FROM kafka_scan('events', brokers := '127.0.0.1:19092')").show()

    from kafkars import ConsumerManager, SourceTopic

    with ConsumerManager({"bootstrap.servers": "127.0.0.1:19092"},
                         [SourceTopic.from_earliest("events")]) as manager:
        batch = manager.poll(timeout_ms=1000)

:func:`plan` resolves topics into ranges (:class:`OffsetRange`) once, :func:`read_range` reads one
of them anywhere, and :mod:`kafkars.ray` reads a plan as a Ray Dataset.

The ``kafkars`` command (:mod:`kafkars.cli`): ``kafkars shell`` starts the DuckDB CLI with the
extension loaded, ``kafkars --version`` prints the versions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkars._internal import (
    DecodeError,
    KafkarsError,
    SchemaRegistryError,
    __version__,
    librdkafka_version,
)
from kafkars.manager import ConsumerManager, SourceTopic
from kafkars.plan import OffsetRange, plan, read_range

if TYPE_CHECKING:
    # Imported where used: a process that only reads Kafka into Arrow (a Ray worker running
    # read_range) need not pay for loading DuckDB.
    import duckdb

__all__ = [
    "ConsumerManager",
    "DecodeError",
    "KafkarsError",
    "OffsetRange",
    "SchemaRegistryError",
    "SourceTopic",
    "__version__",
    "connect",
    "extension_path",
    "librdkafka_version",
    "load_extension",
    "plan",
    "read_range",
]

_EXTENSION_FILE = "kafkars.duckdb_extension"
_EXTENSION_PATH_ENV = "KAFKARS_EXTENSION_PATH"
# DuckDB's streaming result hands rows to the client only once this much has piled up (its
# default is 10 MB). A followed scan produces rows as messages arrive, so any buffer held live
# rows back until later ones filled it (rows of a burst's end never came out); 0 hands each
# chunk over as it is produced, and bulk reads through the Arrow reader were no slower.
_STREAMING_BUFFER_SIZE = "0KB"


def extension_path() -> str:
    """Return the path of the ``kafkars.duckdb_extension`` file shipped in this package.

    The environment variable ``KAFKARS_EXTENSION_PATH`` overrides it (for development builds).

    Raises:
        FileNotFoundError: if the file is missing (a source checkout before ``make build``).
    """
    override = os.environ.get(_EXTENSION_PATH_ENV)
    path = Path(override) if override else Path(__file__).with_name(_EXTENSION_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"kafkars DuckDB extension not found at {path}; build it with 'make build'"
            + (f" or fix {_EXTENSION_PATH_ENV}" if override else "")
        )
    return str(path)


def load_extension(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Load the kafkars extension into ``con`` and return ``con``.

    The connection's database must allow unsigned extensions: create it with
    ``duckdb.connect(config={"allow_unsigned_extensions": True})``, or use :func:`connect`.

    Raises:
        FileNotFoundError: if the extension file is missing.
        duckdb.Error: if DuckDB refuses the extension; the message says how to allow it.
    """
    import duckdb

    path = extension_path()
    try:
        con.load_extension(path)
    except duckdb.Error as error:
        message = str(error).lower()
        if "unsigned" in message or "signature" in message:
            raise type(error)(
                f"{error}\nkafkars is an unsigned extension: create the connection with "
                "duckdb.connect(config={'allow_unsigned_extensions': True}) "
                "or use kafkars.connect()"
            ) from error
        raise
    return con


def connect(
    database: str = ":memory:",
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with the kafkars extension loaded and streaming tuned.

    Arguments are those of :func:`duckdb.connect`; ``allow_unsigned_extensions`` is switched
    on. The connection's ``streaming_buffer_size`` is 0, so that a streaming query
    (``con.sql(q).to_arrow_reader()``) hands rows over as they are produced: the first rows of
    a scan promptly, and each message of a followed scan as it arrives.
    """
    import duckdb

    settings = dict(config or {})
    settings["allow_unsigned_extensions"] = True
    con = duckdb.connect(database, read_only=read_only, config=settings)
    load_extension(con)
    con.execute(f"SET streaming_buffer_size = '{_STREAMING_BUFFER_SIZE}'")
    return con
