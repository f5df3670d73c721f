# kafkars: `make help` lists the targets. `make test` sets itself up from nothing: Python venv,
# Rust crates, the broker jars and the Schema Registry (Debian packages:
# scripts/install-system-deps.sh).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
EXTENSION := target/release/kafkars.duckdb_extension
PACKAGED_EXTENSION := python/kafkars/kafkars.duckdb_extension
KAFKA := broker/kafka.sh
REGISTRY := registry/registry.sh
RUST_SOURCES := $(shell find core extension python/src -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

# --- setup ------------------------------------------------------------------------------------

$(VENV_STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## create .venv with the build and test tools

.PHONY: system-deps
system-deps: ## install the Debian packages (compiler, headers, Java, Maven, kcat)
	scripts/install-system-deps.sh

# --- build ------------------------------------------------------------------------------------

$(EXTENSION): $(RUST_SOURCES) extension/package.py
	cargo build --release --locked -p kafkars
	$(PYTHON) extension/package.py target/release/libkafkars.so $@ --version v$(VERSION)

.PHONY: extension
extension: $(EXTENSION) ## build kafkars.duckdb_extension (target/release)

.PHONY: build
build: $(VENV_STAMP) $(EXTENSION) ## build the extension and install the kafkars package into .venv
	cp $(EXTENSION) $(PACKAGED_EXTENSION)
	rm -f target/wheels/kafkars-*.whl
	# The wheel is for this machine: it links the system OpenSSL, so skip manylinux repair.
	$(VENV)/bin/maturin build --release --locked -q -m python/Cargo.toml -o target/wheels --auditwheel skip
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels/kafkars-*.whl
	$(PY) -m pip install -q target/wheels/kafkars-*.whl

# --- checks -----------------------------------------------------------------------------------

.PHONY: lint
lint: $(VENV_STAMP) ## rustfmt, clippy and ruff
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: test
test: system-deps build lint ## everything CI runs: lint, cargo test, SQL tests, pytest (starts broker and registry)
	scripts/run-tests.sh

.PHONY: test-rust
test-rust: ## cargo test for the core and the extension
	cargo test --locked -p kafkars-core -p kafkars

.PHONY: test-sql
test-sql: build ## the SQLLogicTest files in sql/tests (needs `make kafka-up`)
	$(VENV)/bin/pytest sql/tests

.PHONY: test-python
test-python: build ## pytest for the Python package (needs `make kafka-up registry-up`)
	$(VENV)/bin/pytest python/tests

# --- local broker -----------------------------------------------------------------------------

.PHONY: kafka-up
kafka-up: ## start one local broker on 127.0.0.1:19092 (no-op if it runs)
	$(KAFKA) up

.PHONY: kafka-down
kafka-down: ## stop the local broker (keeps its data)
	$(KAFKA) down

.PHONY: kafka-cluster-up
kafka-cluster-up: ## start three brokers on 127.0.0.1:29092-29094
	$(KAFKA) cluster-up

.PHONY: kafka-cluster-down
kafka-cluster-down: ## stop the three-broker cluster
	$(KAFKA) cluster-down

# --- local Schema Registry --------------------------------------------------------------------

.PHONY: registry-up
registry-up: ## start the Schema Registry on 127.0.0.1:18081 (no-op if it runs)
	$(REGISTRY) up

.PHONY: registry-down
registry-down: ## stop the Schema Registry (its schemas are in memory: they are lost)
	$(REGISTRY) down

# --- benchmarks -------------------------------------------------------------------------------

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# Options for bench/run.py, e.g. `make bench BENCH_ARGS=--quick` (a tenth of the data, one run).
BENCH_ARGS ?=

$(BENCH_STAMP): bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt
	touch $@

.PHONY: bench
bench: build registry-up $(BENCH_STAMP) ## benchmarks vs the limit and the peers; results in bench/results (BENCH_ARGS=--quick)
	$(KAFKA) up
	cargo build --release --locked -p kafkars-bench-limit
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

# --- demo -------------------------------------------------------------------------------------

.PHONY: demo
demo: build kafka-up registry-up ## start a broker, load sample events and run the README's queries
	scripts/demo.sh

.PHONY: clean
clean: ## remove build outputs (keeps .venv, the broker jars and data)
	cargo clean
	rm -f $(PACKAGED_EXTENSION)
