#!/usr/bin/env bash
# The main job on a local broker: sample events in topic `events`, then the README's queries,
# first in the DuckDB CLI, then in Python. `make demo` builds dist/ and starts the broker first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

.venv/bin/python scripts/demo_data.py

echo
echo "== DuckDB CLI: the README's SQL"
.venv/bin/python scripts/readme_examples.py sql
echo "--"
# The README installs kafkars from dist/repository; a fresh extension directory makes that this
# build, whatever an earlier INSTALL left in ~/.duckdb.
extensions=$(mktemp -d)
trap 'rm -rf "$extensions"' EXIT
.venv/bin/python scripts/readme_examples.py sql \
  | .venv/bin/duckdb -unsigned -batch -bail -box -cmd "SET extension_directory = '$extensions'"

echo
echo "== Python: the README's example"
.venv/bin/python scripts/readme_examples.py python
echo "--"
.venv/bin/python scripts/readme_examples.py python | .venv/bin/python -
