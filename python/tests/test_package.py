"""The package ships the extension and loads it into DuckDB connections."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

import kafkars
from testkit.extension import footer_fields


# The extension file is inside the installed package and carries DuckDB's footer.
def test_extension_path_points_into_the_package() -> None:
    path = Path(kafkars.extension_path())
    assert path.name == "kafkars.duckdb_extension"
    assert path.parent == Path(kafkars.__file__).parent
    assert footer_fields(path)[3:] == [
        "C_STRUCT",
        f"v{kafkars.__version__}",
        "v1.5.6",
        "linux_amd64",
        "4",
    ]


# connect() gives a connection where the functions exist and streaming is tuned.
def test_connect_loads_the_extension(con: duckdb.DuckDBPyConnection) -> None:
    names = con.sql(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_name LIKE 'kafka_%' ORDER BY 1"
    ).fetchall()
    assert names == [
        ("kafka_offsets",),
        ("kafka_partitions",),
        ("kafka_scan",),
        ("kafka_topics",),
        ("kafka_version",),
        ("kafkars_arrow_ipc",),
    ]
    [(size,)] = con.sql("SELECT current_setting('streaming_buffer_size')").fetchall()
    assert size == "0 bytes"


# load_extension() works on a connection the user made with unsigned extensions allowed.
def test_load_extension_into_own_connection() -> None:
    con = duckdb.connect(config={"allow_unsigned_extensions": True})
    assert kafkars.load_extension(con) is con
    assert con.sql(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'kafka_topics'"
    ).fetchall() == [(1,)]


# Without allow_unsigned_extensions the error says how to fix it.
def test_load_extension_refused_explains_unsigned() -> None:
    con = duckdb.connect()
    with pytest.raises(duckdb.Error, match="allow_unsigned_extensions"):
        kafkars.load_extension(con)


# A missing extension file is a FileNotFoundError naming the path.
def test_extension_path_override_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "kafkars.duckdb_extension"
    monkeypatch.setenv("KAFKARS_EXTENSION_PATH", str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        kafkars.extension_path()


# The compiled module reports its versions.
def test_versions() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", kafkars.__version__)
    assert re.fullmatch(r"\d+\.\d+\.\d+", kafkars.librdkafka_version())
