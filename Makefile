# gitmoor — one entry point. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
CLUSTER_HOME ?= .local/cluster

.PHONY: help deps binaries demo demo-down test test-unit lint cluster cluster-down cluster-status bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

deps: ## install uv and the Python environment (.venv) from uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv
	@$(UV) sync --frozen --quiet

binaries: ## build the control plane, kwok, helm, sops and age into ~/.cache/gitmoor (once)
	@bash testenv/build.sh >/dev/null

demo: deps binaries ## start the local control plane and run the demo
	@$(UV) run python -m gitmoor.demo --home $(CLUSTER_HOME)

demo-down: deps ## stop what the demo started (controller, control plane)
	@$(UV) run python -m gitmoor.demo --down
	@$(UV) run python -m gitmoor.testenv down --home $(CLUSTER_HOME)

test: deps binaries ## run every test (unit and integration, on a real control plane)
	@$(UV) run pytest

test-unit: deps ## run the fast unit tests only
	@$(UV) run pytest tests/unit

lint: deps ## ruff, mypy --strict and the import-layer contracts
	@$(UV) run ruff check src tests bench
	@$(UV) run ruff format --check src tests bench
	@$(UV) run mypy
	@$(UV) run lint-imports

cluster: deps binaries ## start the local control plane in the background (reuses a running one)
	@$(UV) run python -m gitmoor.testenv up --home $(CLUSTER_HOME)

cluster-down: deps ## stop the local control plane and remove its files
	@$(UV) run python -m gitmoor.testenv down --home $(CLUSTER_HOME)

cluster-status: deps ## is the local control plane up?
	@$(UV) run python -m gitmoor.testenv status --home $(CLUSTER_HOME)

bench: deps binaries ## run the benchmarks and print their figures
	@$(UV) run python bench/run.py
