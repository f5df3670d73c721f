"""The built wheel brings everything a user needs: installed alone into a new virtual
environment, it loads the extension and hands TIMESTAMPTZ values to Python."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

from testkit.kafka import TopicFactory, round_robin

WHEELS = Path(__file__).resolve().parents[2] / "target" / "wheels"


# pip installs the wheel with its declared dependencies (duckdb, pyarrow, pytz) and nothing
# else; a scan's rows, timestamps included, reach Python.
def test_wheel_in_fresh_venv(tmp_path: Path, topics: TopicFactory, brokers: str) -> None:
    wheels = sorted(WHEELS.glob("kafkars-*.whl"))
    assert len(wheels) == 1, f"expected one wheel from 'make build' in {WHEELS}, found {wheels}"
    topic = topics.create("fresh", partitions=2, messages=round_robin(4, 2))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheels[0]],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    script = (
        "import kafkars\n"
        "rows = kafkars.connect().sql(\n"
        f"    \"SELECT partition, timestamp FROM kafka_scan('{topic}', brokers := '{brokers}')\"\n"
        ").fetchall()\n"
        "print([(p, t.isoformat()) for p, t in rows])\n"
        "print(kafkars.__file__)\n"
    )
    result = subprocess.run(
        [python, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    printed_rows, module_file = result.stdout.strip().splitlines()
    assert printed_rows == str([(i % 2, f"2024-01-01T00:00:0{i}+00:00") for i in range(4)])
    assert Path(module_file).is_relative_to(env_dir)
