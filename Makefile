# memsilo — one entry point for what CI does. `make help` lists the targets.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(CURDIR)/target
DATA ?= ./data
LISTEN ?= 127.0.0.1:3300

.PHONY: help test test-rust test-python serve bench bench-compare fmt lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

test: test-rust test-python ## Everything CI runs

test-rust: ## Rust unit and integration tests (debug build)
	cargo test --workspace

PYTHON ?= python3
PY_VENV := $(CURDIR)/python/.venv
test-python: ## Python package: venv in python/.venv, debug build of the extension, pytest
	test -x $(PY_VENV)/bin/python || $(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" pytest mypy numpy
	cd python && VIRTUAL_ENV=$(PY_VENV) PATH=$(PY_VENV)/bin:$$PATH maturin develop --quiet
	cd python && $(PY_VENV)/bin/python -m pytest tests -q

serve: ## Run the HTTP server on ./data (MEMSILO_ADMIN_KEY or a generated key)
	cargo run --release -p memsilo-http --bin memsilo -- serve --data $(DATA) --listen $(LISTEN)

bench: ## Criterion benches of the core paths
	cargo bench -p memsilo

fmt: ## Format the Rust code
	cargo fmt --all

lint: ## Clippy (warnings are errors) and format check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --all -- --check
