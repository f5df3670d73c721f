"""What `make dist` ships works on its own: the manylinux wheel, the extension repository, the
`kafkars` command and the one version they all show.

These read dist/ (written by `make dist`, which `make test` runs first) and fail when it is
missing.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import venv
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from testkit.cli import cli_rows
from testkit.extension import footer_fields
from testkit.kafka import BASE_TIMESTAMP_MS, BROKERS, Message, TopicFactory

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
REPOSITORY = DIST / "repository"
# The DuckDB versions the repository serves (the Makefile's DUCKDB_VERSIONS).
DUCKDB_VERSIONS = ["v1.5.6", "v2.0.0", "v2.0.1"]
# What the extension and the wheel's module may link: glibc's libraries (the dynamic loader
# ld-linux among them, which every glibc program links) and libgcc_s; all of them are on the
# manylinux allow-list (PEP 600). Nothing else: OpenSSL, zlib, zstd and lz4 are built in.
ALLOWED_NEEDED = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
}
# The programs a machine without a build toolchain lacks.
TOOLCHAIN = ["cargo", "rustc", "rustup", "cc", "gcc", "c++", "g++", "clang", "zig", "ld"]


def cargo_version() -> str:
    # [workspace.package]'s version, the only version line before any [dependencies].
    found = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    assert found, "no version in Cargo.toml"
    return found.group(1)


@pytest.fixture(scope="module")
def wheel() -> Path:
    wheels = sorted(DIST.glob("kafkars-*.whl"))
    if len(wheels) != 1:
        pytest.fail(f"expected one wheel in {DIST}, found {wheels}: run 'make dist'")
    return wheels[0]


@pytest.fixture(scope="module")
def extension() -> Path:
    path = REPOSITORY / "v2.0.0" / "linux_amd64" / "kafkars.duckdb_extension"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run 'make dist'")
    return path


@pytest.fixture
def events(topics: TopicFactory) -> str:
    messages = [
        Message(
            partition=i % 2,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            timestamp_ms=BASE_TIMESTAMP_MS + i,
        )
        for i in range(7)
    ]
    return topics.create("install", partitions=2, messages=messages)


def needed(path: Path) -> set[str]:
    """The NEEDED entries of an ELF file's dynamic section, as `readelf -d` prints them."""
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the wheel ---------------------------------------------------------------------------------


def test_wheel_is_abi3_manylinux_2_28_or_older(wheel: Path) -> None:
    assert re.fullmatch(
        rf"kafkars-{re.escape(cargo_version())}-cp310-abi3-manylinux_2_(\d+)_x86_64\.whl",
        wheel.name,
    ), wheel.name
    result = subprocess.run(
        [Path(sys.executable).with_name("auditwheel"), "show", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = " ".join(result.stdout.split())
    tag = re.search(
        r'consistent with the following platform tag: "manylinux_2_(\d+)_x86_64"', report
    )
    assert tag, report
    assert int(tag.group(1)) <= 28, report
    # auditwheel names any library outside the allow-list the wheel would need.
    assert "external shared libraries" not in report, report


def test_extension_and_module_need_only_glibc(wheel: Path, extension: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    module = next(tmp_path.glob("kafkars/_internal*.so"))
    packaged = tmp_path / "kafkars" / "kafkars.duckdb_extension"
    for path in (extension, packaged, module):
        entries = needed(path)
        assert entries <= ALLOWED_NEEDED, (path.name, entries - ALLOWED_NEEDED)
        assert "libc.so.6" in entries
    # The wheel carries the very file the repository serves.
    assert sha256(packaged.read_bytes()) == sha256(extension.read_bytes())


# --- the extension repository ------------------------------------------------------------------


def test_repository_layout(extension: Path) -> None:
    expected = extension.read_bytes()
    for version in DUCKDB_VERSIONS:
        folder = REPOSITORY / version / "linux_amd64"
        assert (folder / "kafkars.duckdb_extension").read_bytes() == expected, version
        assert gzip.decompress((folder / "kafkars.duckdb_extension.gz").read_bytes()) == expected


def test_one_version_everywhere(
    wheel: Path, extension: Path, con: duckdb.DuckDBPyConnection
) -> None:
    import importlib.metadata

    import kafkars

    version = cargo_version()
    assert kafkars.__version__ == version
    assert importlib.metadata.version("kafkars") == version
    assert f"v{version}" in footer_fields(extension)
    assert con.execute("SELECT kafka_version()").fetchone()[0] == {
        "kafkars": version,
        "librdkafka": kafkars.librdkafka_version(),
    }
    assert (REPO / "CHANGELOG.md").read_text().count(f"## {version}") == 1


def cli_install_and_scan(duckdb_cli: str, repository: str, topic: str, tmp_path: Path) -> list:
    sql = f"""
        INSTALL kafkars FROM '{repository}';
        LOAD kafkars;
        SELECT extension_version, install_mode, installed_from FROM duckdb_extensions()
        WHERE extension_name = 'kafkars';
        SELECT count(*) AS messages, string_agg(decode(value), ',' ORDER BY timestamp) AS v
        FROM kafka_scan('{topic}', brokers := '{BROKERS}');
    """
    return cli_rows(duckdb_cli, sql, extension_directory=tmp_path, cwd=REPO, timeout=120)


EXPECTED_VALUES = ",".join(f"v{i}" for i in range(7))


def test_install_from_folder_in_cli(duckdb_cli: str, events: str, tmp_path: Path) -> None:
    rows = cli_install_and_scan(duckdb_cli, "dist/repository", events, tmp_path)
    assert rows == [
        ["extension_version", "install_mode", "installed_from"],
        [f"v{cargo_version()}", "REPOSITORY", "dist/repository"],
        ["messages", "v"],
        ["7", EXPECTED_VALUES],
    ]
    assert (tmp_path / "v1.5.6" / "linux_amd64" / "kafkars.duckdb_extension").is_file()


@pytest.fixture
def http_repository() -> Iterator[str]:
    """dist/repository served over HTTP on loopback, as a static web server would."""
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *args, directory=str(REPOSITORY)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_install_from_http_in_cli(
    duckdb_cli: str, events: str, tmp_path: Path, http_repository: str
) -> None:
    rows = cli_install_and_scan(duckdb_cli, http_repository, events, tmp_path)
    assert rows[-1] == ["7", EXPECTED_VALUES]


@pytest.mark.parametrize("source", ["folder", "http"])
def test_install_in_python_duckdb(
    source: str, events: str, tmp_path: Path, http_repository: str
) -> None:
    repository = str(REPOSITORY) if source == "folder" else http_repository
    con = duckdb.connect(
        config={"allow_unsigned_extensions": True, "extension_directory": str(tmp_path)}
    )
    con.execute(f"INSTALL kafkars FROM '{repository}'")
    con.execute("LOAD kafkars")
    rows = con.sql(
        f"SELECT partition, \"offset\", decode(value) FROM kafka_scan('{events}', "
        f"brokers := '{BROKERS}')"
    ).fetchall()
    assert rows == [(i % 2, i // 2, f"v{i}") for i in range(7)]
    assert (
        tmp_path / f"v{duckdb.__version__}" / "linux_amd64" / "kafkars.duckdb_extension"
    ).is_file()
    con.close()


# --- the kafkars command -----------------------------------------------------------------------


def test_kafkars_shell_prints_the_count(events: str) -> None:
    kafkars_command = Path(sys.executable).with_name("kafkars")
    result = subprocess.run(
        [
            kafkars_command,
            "shell",
            "-csv",
            "-c",
            f"SELECT count(*) AS messages FROM kafka_scan('{events}', brokers := '{BROKERS}')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["messages", "7"]


def test_python_m_kafkars_version() -> None:
    import kafkars

    result = subprocess.run(
        [sys.executable, "-m", "kafkars", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"kafkars {cargo_version()}",
        f"librdkafka {kafkars.librdkafka_version()}",
        f"duckdb {duckdb.__version__}",
        "duckdb CLI 1.5.6",
    ]


# --- a machine without a toolchain -------------------------------------------------------------


def toolchain_free_path(extra: Path) -> str:
    """PATH with `extra` first and without any folder holding cargo, rustc or a C compiler."""
    folders = [str(extra)] + [
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and not any(shutil.which(tool, path=folder) for tool in TOOLCHAIN)
    ]
    path = os.pathsep.join(folders)
    for tool in TOOLCHAIN:
        assert shutil.which(tool, path=path) is None, tool
    return path


FRESH_VENV_SCRIPT = """
import json, sys
import kafkars
from kafkars import ConsumerManager, SourceTopic

topic, brokers = sys.argv[1], sys.argv[2]
con = kafkars.connect()
rows = con.sql(
    f"SELECT decode(value), timestamp FROM kafka_scan('{topic}', brokers := '{brokers}')"
).fetchall()
polled = []
with ConsumerManager(
    {"bootstrap.servers": brokers}, [SourceTopic.from_earliest(topic)], batch_size=100
) as manager:
    while (batch := manager.poll(timeout_ms=1000)) is not None and batch.num_rows:
        polled += [bytes(v).decode() for v in batch.column("value").to_pylist()]
        if len(polled) >= 7:
            break
print(json.dumps({
    "sql": [r[0] for r in rows],
    "timestamps": [r[1].isoformat() for r in rows],
    "polled": polled,
    "module": kafkars.__file__,
}))
"""


def test_wheel_in_a_fresh_venv_without_toolchain(wheel: Path, events: str, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    env = {**os.environ, "PATH": toolchain_free_path(environment / "bin")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("KAFKARS_EXTENSION_PATH", None)

    def run(
        *command: str | Path, check: bool = True, path: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(part) for part in command],
            capture_output=True,
            text=True,
            timeout=600,
            env={**env, "PATH": path} if path else env,
            cwd=tmp_path,
        )
        if check:
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        return result

    # The wheel's dependencies at the versions the rest of the tests use (pip's cache has them).
    run(python, "-m", "pip", "install", "-q", str(wheel), "duckdb==2.0.0", "pyarrow==26.0.1")
    result = run(python, "-c", FRESH_VENV_SCRIPT, events, BROKERS)
    values = [f"v{i}" for i in range(7)]
    read = json.loads(result.stdout)
    assert read["sql"] == read["polled"] == values
    # TIMESTAMPTZ reaches Python (pytz, a declared dependency, is installed with the wheel).
    assert read["timestamps"] == [
        datetime.fromtimestamp((BASE_TIMESTAMP_MS + i) / 1000, timezone.utc).isoformat()
        for i in range(7)
    ]
    assert Path(read["module"]).is_relative_to(environment)

    # Without the [cli] extra nor a duckdb on PATH, `kafkars shell` says what to install.
    assert shutil.which("duckdb", path=env["PATH"]) is None
    shell = run(environment / "bin" / "kafkars", "shell", "-c", "SELECT 1", check=False)
    assert shell.returncode == 2
    assert "pip install 'kafkars[cli]'" in shell.stderr

    # A duckdb executable on PATH (here the 1.5.6 binary the duckdb-cli package ships) does.
    import duckdb_cli

    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "duckdb").symlink_to(Path(duckdb_cli.__file__).with_name("duckdb"))
    count_sql = f"SELECT count(*) AS messages FROM kafka_scan('{events}', brokers := '{BROKERS}')"
    shell = run(
        environment / "bin" / "kafkars",
        "shell",
        "-csv",
        "-c",
        count_sql,
        path=f"{env['PATH']}{os.pathsep}{on_path}",
    )
    assert shell.stdout.splitlines() == ["messages", "7"]

    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        f"kafkars[cli] @ {wheel.as_uri()}",
        "duckdb-cli==1.5.6",
    )
    # The extra's CLI comes first.
    assert (
        run(python, "-c", "from kafkars.cli import shell_command as c; print(c([])[1:3])").stdout
        == "['-m', 'duckdb_cli']\n"
    )
    shell = run(environment / "bin" / "kafkars", "shell", "-csv", "-c", count_sql)
    assert shell.stdout.splitlines() == ["messages", "7"]
    version = run(python, "-m", "kafkars", "--version")
    assert version.stdout.splitlines()[0] == f"kafkars {cargo_version()}"


def interpreter(version: str) -> str:
    """A CPython `version` (e.g. "3.10") of this machine, from pyenv's versions or PATH: the
    first that runs (a pyenv shim for a version that is not selected exits 127)."""
    candidates = [
        str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))
    ]
    on_path = shutil.which(f"python{version}")
    candidates += [on_path] if on_path else []
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return candidate
    pytest.fail(f"no working CPython {version} on this machine (tried {candidates})")


# The abi3 wheel is one file for every CPython from 3.10 on: the oldest and the newest
# supported both import it, load the extension and scan.
@pytest.mark.parametrize("version", ["3.10", "3.13"])
def test_abi3_wheel_on_cpython(version: str, wheel: Path, events: str, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    subprocess.run([interpreter(version), "-m", "venv", str(environment)], check=True, timeout=120)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr
    script = (
        "import sys, kafkars\n"
        "con = kafkars.connect()\n"
        f"n = con.sql(\"SELECT count(*) FROM kafka_scan('{events}', brokers := '{BROKERS}')\")\n"
        "print(sys.version_info[:2], n.fetchall()[0][0])\n"
    )
    result = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    major, minor = version.split(".")
    assert result.stdout.strip() == f"({major}, {minor}) 7"
