"""The DuckDB command-line shell in tests: run a SQL script, read its CSV output."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path


def cli_rows(
    cli: str,
    sql: str,
    *,
    extension_directory: Path | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> list[list[str]]:
    """Feed ``sql`` to the CLI as a user starts it for kafkars (``-unsigned``), stopping at the
    first error (``-bail``), and return every CSV line it printed, header lines included.
    ``extension_directory`` keeps ``INSTALL`` out of the user's ``~/.duckdb``.

    Fails the test, with the CLI's stderr, when the script fails.
    """
    command = [cli, "-unsigned", "-bail", "-csv"]
    if extension_directory is not None:
        command += ["-cmd", f"SET extension_directory = '{extension_directory}'"]
    result = subprocess.run(
        command, input=sql, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    return list(csv.reader(result.stdout.splitlines()))
