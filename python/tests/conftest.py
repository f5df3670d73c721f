"""Fixtures for the Python package's tests (the broker fixtures live in the root conftest)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory DuckDB with the extension loaded."""
    # Imported here, not at the top: tests that do not use kafkars (e.g. those of the test
    # services themselves) then also run where the package is not built.
    import kafkars

    connection = kafkars.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def duckdb_cli() -> str:
    """The DuckDB command-line shell installed beside this Python (duckdb-cli on PyPI)."""
    beside_python = Path(sys.executable).with_name("duckdb")
    path = str(beside_python) if beside_python.exists() else shutil.which("duckdb")
    if path is None:
        pytest.fail("the DuckDB CLI is not installed (pip install duckdb-cli)", pytrace=False)
    return path
