# kafkars: `make help` lists the targets. `make demo` and `make test` set themselves up from
# nothing: Debian packages (scripts/install-system-deps.sh), the Python venv with zig, Rust
# crates, the broker jars and the Schema Registry.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# The one version: Cargo.toml's [workspace.package] (the wheel, the extension footer,
# kafkars.__version__ and SQL kafka_version() all show it).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
KAFKA := broker/kafka.sh
REGISTRY := registry/registry.sh
RUST_SOURCES := $(shell find core extension python/src workspace-hack -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock

# Release builds are for x86-64 Linux with glibc 2.28 or newer (manylinux_2_28): zig (from
# PyPI) links the extension and the wheel against glibc 2.28's symbols and compiles the C
# libraries linked in statically (librdkafka, OpenSSL, zstd, zlib). cargo-zigbuild drives cargo
# for the extension and maturin --zig does for the wheel; naming the same cargo-zigbuild
# executable for both gives them the same compiler wrappers, so with the workspace-hack crate's
# shared features the core and the C libraries compile once for both.
RUST_TARGET := x86_64-unknown-linux-gnu
GLIBC := 2.28
MANYLINUX := manylinux_$(subst .,_,$(GLIBC))
RELEASE_DIR := target/$(RUST_TARGET)/release
EXTENSION := $(RELEASE_DIR)/kafkars.duckdb_extension
PACKAGED_EXTENSION := python/kafkars/kafkars.duckdb_extension
WHEEL := target/wheels/kafkars-$(VERSION)-cp310-abi3-$(MANYLINUX)_x86_64.whl
ZIG_ENV := env PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	"CARGO_BIN_EXE_cargo-zigbuild=$(CURDIR)/$(VENV)/bin/cargo-zigbuild"
# The DuckDB versions `make dist` writes a repository folder for: the extension asks for C API
# v1.5.6, which DuckDB 1.5.6 and 2.0.x accept (1.5.0-1.5.5 accept v1.2.0 at most).
DUCKDB_VERSIONS := v1.5.6 v2.0.0 v2.0.1

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

# --- setup ------------------------------------------------------------------------------------

.PHONY: system-deps
system-deps: ## install the Debian packages (C compiler, Java, Maven, kcat, curl)
	scripts/install-system-deps.sh

$(VENV_STAMP): requirements-dev.txt | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## create .venv with the build and test tools (zig and maturin included)

# --- build ------------------------------------------------------------------------------------

$(EXTENSION): $(RUST_SOURCES) extension/package.py | $(VENV_STAMP)
	$(ZIG_ENV) cargo zigbuild --release --locked -p kafkars --target $(RUST_TARGET).$(GLIBC)
	$(PYTHON) extension/package.py $(RELEASE_DIR)/libkafkars.so $@ --version v$(VERSION)

.PHONY: extension
extension: $(EXTENSION) ## build kafkars.duckdb_extension (in target/x86_64-unknown-linux-gnu/release)

$(WHEEL): $(EXTENSION) $(shell find python/kafkars -name '*.py' -o -name '*.pyi') python/pyproject.toml
	cp $(EXTENSION) $(PACKAGED_EXTENSION)
	rm -f target/wheels/kafkars-*.whl
	# No --auditwheel skip: maturin checks the glibc symbol versions against manylinux_2_28
	# and refuses a wheel that needs a library outside the manylinux allow-list.
	$(ZIG_ENV) maturin build --release --locked -q -m python/Cargo.toml -o target/wheels \
		--target $(RUST_TARGET) --zig --compatibility $(MANYLINUX)
	test -f $@

.PHONY: wheel
wheel: $(WHEEL) ## build the self-contained manylinux wheel (target/wheels)

.PHONY: build
build: $(VENV_STAMP) $(WHEEL) ## build the extension and the wheel, and install the wheel into .venv
	$(PY) -m pip install -q --force-reinstall --no-deps $(WHEEL)
	$(PY) -m pip install -q $(WHEEL)

.PHONY: dist
dist: build ## dist/: the wheel and a DuckDB extension repository (INSTALL kafkars FROM 'dist/repository')
	rm -rf dist
	mkdir -p dist
	cp $(WHEEL) dist/
	# DuckDB's layout: a local INSTALL ... FROM '<folder>' reads the file, an HTTP repository
	# serves the .gz beside it.
	for version in $(DUCKDB_VERSIONS); do \
		mkdir -p dist/repository/$$version/linux_amd64; \
		cp $(EXTENSION) dist/repository/$$version/linux_amd64/; \
		gzip -9 -n -k dist/repository/$$version/linux_amd64/kafkars.duckdb_extension; \
	done

# --- checks -----------------------------------------------------------------------------------

.PHONY: lint
lint: $(VENV_STAMP) ## rustfmt, clippy and ruff
	cargo fmt --all --check
	cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# The workspace-hack crate must match the dependencies, or the wheel rebuilds the core.
	if command -v cargo-hakari >/dev/null; then cargo hakari verify; fi

.PHONY: test
test: system-deps dist lint ## everything CI runs: lint, cargo test, SQL tests, pytest (starts broker and registry)
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
demo: system-deps dist kafka-up registry-up ## start a broker, load sample events and run the README's queries
	scripts/demo.sh

.PHONY: clean
clean: ## remove build outputs (keeps .venv, the broker jars and data)
	cargo clean
	rm -rf dist $(PACKAGED_EXTENSION)
