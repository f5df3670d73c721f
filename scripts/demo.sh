#!/usr/bin/env bash
# The main job on a local broker: sample events in topic `events`, then the README's queries,
# first in the DuckDB CLI, then in Python. `make demo` builds and starts the broker first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

.venv/bin/python scripts/demo_data.py

echo
echo "== DuckDB CLI: the README's SQL"
.venv/bin/python scripts/readme_examples.py sql
echo "--"
.venv/bin/python scripts/readme_examples.py sql | .venv/bin/duckdb -unsigned -batch -bail -box

echo
echo "== Python: the README's example"
.venv/bin/python scripts/readme_examples.py python
echo "--"
.venv/bin/python scripts/readme_examples.py python | .venv/bin/python -
