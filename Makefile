# model-registry-operator. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
IMG ?= model-registry-operator:latest
SYNC_IMG ?= model-sync:latest
CACHE_DIR ?= $(or $(MRO_CACHE_DIR),$(HOME)/.cache/model-registry-operator)
CLUSTER_DIR ?= $(CACHE_DIR)/local-cluster
# Integration tests wait on servers more than on CPU: run more of them than there are cores.
TEST_THREADS ?= 6

##@ General
.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_\/-]+:.*?##/ { printf "  %-22s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
.PHONY: build
build: ## Build all binaries (debug).
	$(CARGO) build --workspace --bins

.PHONY: fmt
fmt: ## Format the code.
	$(CARGO) fmt --all

.PHONY: lint
lint: ## Formatting check and clippy with warnings denied.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

.PHONY: manifests
manifests: ## Generate the CRD YAML under config/crd/bases.
	$(CARGO) run -q -p model-registry-operator -- crdgen --out-dir config/crd/bases

.PHONY: check-manifests
check-manifests: ## Fail when the committed CRD YAML differs from the generated one.
	$(CARGO) run -q -p model-registry-operator -- crdgen --check --out-dir config/crd/bases

##@ Running
.PHONY: install
install: ## Install the CRDs on the cluster of the current kubeconfig (adapted to its version).
	$(CARGO) run -q -p model-registry-operator -- install

.PHONY: uninstall
uninstall: ## Remove the CRDs (and with them every ModelRegistry and ModelTransfer).
	kubectl delete --ignore-not-found -f config/crd/bases/

.PHONY: run
run: ## Run the operator: against $$KUBECONFIG when set, else on the local control plane (started if needed).
	@if [ -z "$${KUBECONFIG:-}" ]; then \
	  eval "$$(bash tests/local-cluster/cluster.sh start --dir $(CLUSTER_DIR))"; \
	  echo "using the local control plane: export KUBECONFIG=$$KUBECONFIG"; \
	fi; \
	$(CARGO) run -q -p model-registry-operator -- install && \
	exec $(CARGO) run -q -p model-registry-operator -- run

##@ Testing
.PHONY: test-deps
test-deps: ## Install what the tests need (control-plane binaries, test servers, Prism). Idempotent.
	bash tests/tools/install-test-deps.sh
	bash tests/local-cluster/provision.sh >/dev/null
	bash tests/tools/install-prism.sh >/dev/null

TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

.PHONY: unit
unit: ## Unit tests only (no servers).
	$(CARGO) test --workspace --exclude mro-tests --locked

.PHONY: integration
integration: ## Integration tests only, against real local servers (control plane, S3, OCI registry, ...).
	$(CARGO) build --workspace --bins --locked
	MODEL_SYNC_BIN=$(TARGET_DIR)/debug/model-sync MRO_OPERATOR_BIN=$(TARGET_DIR)/debug/model-registry-operator \
	  $(CARGO) test -p mro-tests --locked -- --test-threads $(TEST_THREADS)

.PHONY: tests
tests: ## Unit and integration tests in one cargo run (binaries built once, then used by the tests).
	$(CARGO) build --workspace --bins --locked
	MODEL_SYNC_BIN=$(TARGET_DIR)/debug/model-sync MRO_OPERATOR_BIN=$(TARGET_DIR)/debug/model-registry-operator \
	  $(CARGO) test --workspace --locked -- --test-threads $(TEST_THREADS)

.PHONY: test
test: test-deps lint check-manifests tests ## Everything CI runs: lint, drift check, unit and integration tests.

.PHONY: local-cluster
local-cluster: ## Start the local control plane and print `export KUBECONFIG=...`.
	@bash tests/local-cluster/cluster.sh start --dir $(CLUSTER_DIR)

.PHONY: local-cluster-stop
local-cluster-stop: ## Stop the local control plane.
	@bash tests/local-cluster/cluster.sh stop --dir $(CLUSTER_DIR)

##@ Benchmarks
# BENCH_RUNS (runs per size, default 3) and BENCH_SIZES_MIB (default 1024,2048) are passed through.
.PHONY: bench-sync
bench-sync: ## model-sync S3 → OCI (release) vs. a floor of plain S3 GETs + blob uploads: wall, MiB/s, CPU s/GiB, peak RSS, scratch disk.
	$(CARGO) run -q --release --locked -p mro-tests --bin bench_sync
