#!/usr/bin/env bash
# Run every test layer against a real local broker and Schema Registry: cargo test (the core's
# logic), the SQLLogicTest files (the extension, through DuckDB) and pytest (the Python package,
# end to end). Starts the broker and the registry unless they are already up, and stops each
# afterwards only if it started it. Every layer runs even when an earlier one fails; any failure,
# or a layer that ran no test, fails the whole run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()
started=0
registry_started=0
stop_services() {
  if [ "$registry_started" = 1 ]; then registry/registry.sh down; fi
  if [ "$started" = 1 ]; then broker/kafka.sh down; fi
}
trap stop_services EXIT
if ! broker/kafka.sh is-up; then
  broker/kafka.sh up || exit 1
  started=1
fi
if ! registry/registry.sh is-up; then
  registry/registry.sh up || exit 1
  registry_started=1
fi

echo "== cargo test"
cargo_log=$(mktemp)
if cargo test --locked -p kafkars-core -p kafkars 2>&1 | tee "$cargo_log"; then
  # cargo passes with zero tests; we don't.
  grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$cargo_log" || failed+=("cargo test (no tests ran)")
else
  failed+=("cargo test")
fi
rm -f "$cargo_log"

# pytest exits 5 when it collects nothing: any non-zero status fails the layer.
echo "== SQL logic tests"
.venv/bin/pytest sql/tests || failed+=("sql/tests")
echo "== pytest"
.venv/bin/pytest python/tests || failed+=("python/tests")

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all test layers passed"
