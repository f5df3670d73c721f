"""The ``kafkars`` command (also ``python -m kafkars``).

``kafkars shell [DuckDB CLI arguments]``
    Start the DuckDB CLI with unsigned extensions allowed and the kafkars extension shipped in
    this package loaded; every argument after ``shell`` goes to the CLI unchanged, e.g.
    ``kafkars shell -c "SELECT * FROM kafka_topics(brokers := 'localhost:9092')"`` or
    ``kafkars shell analytics.duckdb``. The CLI is the ``duckdb-cli`` package when installed
    (``pip install 'kafkars[cli]'``), else a ``duckdb`` on ``PATH`` (1.5.6 or newer, the first
    whose C API the extension fits).

``kafkars --version``
    Print the versions of kafkars, the librdkafka inside it and the DuckDB it finds.

Exit status: the CLI's own, or 2 when no DuckDB CLI is found or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

import kafkars

_NO_CLI = (
    "kafkars shell: no DuckDB CLI found: install the duckdb-cli package "
    "(pip install 'kafkars[cli]') or put a duckdb 1.5.6+ executable on PATH"
)


def duckdb_cli_command() -> list[str] | None:
    """Return the command that starts the DuckDB CLI, or ``None`` when there is none.

    The ``duckdb-cli`` package (run as ``python -m duckdb_cli``, which keeps its own extension
    directory setup) comes first, then ``duckdb`` on ``PATH``.
    """
    if importlib.util.find_spec("duckdb_cli") is not None:
        return [sys.executable, "-m", "duckdb_cli"]
    on_path = shutil.which("duckdb")
    return [on_path] if on_path else None


def shell_command(arguments: Sequence[str]) -> list[str]:
    """The full DuckDB CLI command line of ``kafkars shell ARGUMENTS``.

    ``-unsigned`` allows the unsigned extension and ``-cmd LOAD '<path>'`` loads it before the
    CLI runs anything else (``-c``, a script on stdin, or the prompt).

    Raises:
        FileNotFoundError: if there is no DuckDB CLI, or the package has no extension file.
    """
    cli = duckdb_cli_command()
    if cli is None:
        raise FileNotFoundError(_NO_CLI)
    path = kafkars.extension_path().replace("'", "''")
    return [*cli, "-unsigned", "-cmd", f"LOAD '{path}'", *arguments]


def versions() -> dict[str, str]:
    """The versions ``kafkars --version`` prints: kafkars, librdkafka, and DuckDB's Python
    package and CLI where installed."""
    found = {"kafkars": kafkars.__version__, "librdkafka": kafkars.librdkafka_version()}
    for label, distribution in (("duckdb", "duckdb"), ("duckdb CLI", "duckdb-cli")):
        try:
            found[label] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[label] = "not installed"
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kafkars`` command with ``argv`` (default: ``sys.argv[1:]``); return its exit
    status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["shell"]:
        try:
            command = shell_command(arguments[1:])
        except FileNotFoundError as error:
            print(error, file=sys.stderr)
            return 2
        sys.stdout.flush()
        if os.name == "posix" and argv is None:
            # Replace this process so the terminal, Ctrl-C and the exit status are the CLI's.
            os.execv(command[0], command)
        return subprocess.call(command)

    parser = argparse.ArgumentParser(
        prog="kafkars",
        description="Read Apache Kafka topics with DuckDB: kafkars shell starts the DuckDB "
        "CLI with the kafkars extension loaded.",
    )
    parser.add_argument(
        "--version", action="store_true", help="print kafkars', librdkafka's and DuckDB's versions"
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["shell"],
        help="shell [DuckDB CLI arguments]: the DuckDB CLI with kafkars loaded",
    )
    options = parser.parse_args(arguments)
    if options.version:
        for name, version in versions().items():
            print(f"{name} {version}")
        return 0
    parser.print_help()
    return 2
