# Local stack: DynamoDB Local (npm jar) + SAM CLI (.venv); see scripts/.
SHELL := bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

DDB := scripts/dynamodb-local.sh
DEV_PORT := 8000
TEST_PORT := 8001
TEMPLATE ?= template.yaml
# Exported env for the recipe shell; scripts/local.env is the single source of values.
LOAD_ENV := set -a; source scripts/local.env; set +a

.PHONY: tools ddb-dev dev stop test e2e rollup bench profile-ab build load fuzz fuzz-api

tools:
	scripts/ensure-tools.sh

ddb-dev: tools
	$(DDB) start --port $(DEV_PORT) --data-dir .local/ddb-data

dev: tools ddb-dev
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(DEV_PORT)
	cargo run -p devserver -- serve

# The web client's browser test alone (make test runs it too): its own dev server on
# free ports, a fresh in-memory DynamoDB Local on E2E_PORT. Screenshots: target/e2e-artifacts/.
E2E_PORT ?= 8005
e2e: tools
	trap '$(DDB) stop --port $(E2E_PORT)' EXIT
	$(DDB) stop --port $(E2E_PORT)
	$(DDB) start --port $(E2E_PORT) --in-memory
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(E2E_PORT)
	cargo build --locked -p devserver
	scripts/e2e.sh

# The analytics rollup on the dev table (what the schedule runs): make rollup [FROM=D TO=D]
rollup:
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(DEV_PORT)
	cargo run -q -p devserver -- rollup $(if $(FROM),--from $(FROM) --to $(TO))

# The performance bench: release bootstraps, a fresh in-memory DynamoDB Local on
# BENCH_PORT, bounded loads on 127.0.0.1; rewrites docs/performance.md.
BENCH_PORT ?= 8002
bench: tools
	trap '$(DDB) stop --port $(BENCH_PORT)' EXIT
	$(DDB) stop --port $(BENCH_PORT)
	$(DDB) start --port $(BENCH_PORT) --in-memory
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(BENCH_PORT) CHAT_METRICS=off
	cargo build --release --locked -p rooms -p conversations -p messages -p analytics -p analytics-rollup -p realtime -p webhooks -p privacy -p bench
	cargo run --release --locked -q -p bench --bin bench

# Release-profile A/B: each candidate profile (opt-level, LTO) builds into its own
# target dir, then all are measured side by side; rewrites docs/release-profile.md.
profile-ab: tools
	trap '$(DDB) stop --port $(BENCH_PORT)' EXIT
	$(DDB) stop --port $(BENCH_PORT)
	$(DDB) start --port $(BENCH_PORT) --in-memory
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(BENCH_PORT) CHAT_METRICS=off
	scripts/profile-ab.sh

# `sam build` with cargo-lambda and zig from PyPI (.venv-build). ARCH=x86_64 where no
# aarch64 Rust target is installed (the default deploys arm64).
ARCH ?= arm64
build: tools
	test -x .venv-build/bin/cargo-lambda || { python3 -m venv .venv-build && .venv-build/bin/pip install --disable-pip-version-check -q -r tools/requirements-build.txt; }
	export PATH="$$PWD/.venv-build/bin:$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
	time .venv/bin/sam build --parameter-overrides Architecture=$(ARCH)

# The long load test (tools/devserver/tests/load.rs at LOAD_SCALE; `make test` runs
# scale 1): concurrent senders/readers over HTTP on 127.0.0.1, its own in-memory
# DynamoDB Local on LOAD_PORT. Figures in docs/reliability.md.
LOAD_PORT ?= 8004
LOAD_SCALE ?= 10
load: tools
	trap '$(DDB) stop --port $(LOAD_PORT)' EXIT
	$(DDB) stop --port $(LOAD_PORT)
	$(DDB) start --port $(LOAD_PORT) --in-memory
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(LOAD_PORT) LOAD_SCALE=$(LOAD_SCALE) CHAT_METRICS=off RUST_LOG=warn
	cargo test --locked -p devserver --test load -- --nocapture

# cargo-fuzz targets of fuzz/ (request bodies, cursors, tokens, ids, dev-server paths),
# FUZZ_SECONDS each. Needs `cargo install cargo-fuzz`; nightly features via RUSTC_BOOTSTRAP.
FUZZ_SECONDS ?= 60
fuzz:
	cd fuzz
	for target in $$(cargo fuzz list); do
	  RUSTC_BOOTSTRAP=1 cargo fuzz run -O $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048
	done

# schemathesis (PyPI, .venv-fuzz) from openapi.yaml against the dev server on
# 127.0.0.1 as customer, agent and admin: no 5xx, every response as documented.
EXAMPLES ?= 30
fuzz-api: tools
	scripts/fuzz-api.sh $(EXAMPLES)

stop:
	$(DDB) stop --port $(DEV_PORT)

# Fresh in-memory DynamoDB per run, stopped on any exit (success, failure, Ctrl-C).
test: tools
	trap '$(DDB) stop --port $(TEST_PORT)' EXIT
	trap 'exit 130' INT TERM
	$(DDB) stop --port $(TEST_PORT)
	$(DDB) start --port $(TEST_PORT) --in-memory
	$(LOAD_ENV)
	export DYNAMODB_ENDPOINT=http://127.0.0.1:$(TEST_PORT)
	cargo test --workspace --locked
	# Runtime fidelity: the built bootstraps under the Lambda Runtime Interface Emulator.
	# `cargo test` only builds the binaries of packages with integration tests.
	cargo build --workspace --bins --locked
	cargo test --locked -p devserver --test rie -- --ignored
	# The web client end to end in headless Chromium (web/tests/e2e.mjs), on a fresh
	# DynamoDB Local: the suite's has served a couple of hundred tables by now, and
	# its pauses made the browser's waits flaky.
	$(DDB) stop --port $(TEST_PORT)
	$(DDB) start --port $(TEST_PORT) --in-memory
	scripts/e2e.sh
	scripts/check-template.sh $(TEMPLATE)
	scripts/check-template.sh web/deploy/template.yaml
