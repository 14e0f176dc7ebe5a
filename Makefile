# gitmoor — one entry point. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
CLUSTER_HOME ?= .local/cluster
UI_DIR := src/gitmoor/server/ui
CHROMIUM_MISSING := Chromium is missing: install Debian's `chromium` package (apt-get install chromium)

.PHONY: help deps binaries chromium ui-vendor demo demo-down test test-unit lint cluster cluster-down cluster-status schemas bench image image-pin image-tools

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

deps: ## install uv and the Python environment (.venv) from uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || python3 -m pip install --quiet --user uv
	@$(UV) sync --frozen --quiet

binaries: ## build the control plane, kwok, helm, sops, age and prometheus into ~/.cache/gitmoor (once)
	@bash testenv/build.sh >/dev/null

demo: deps binaries ## start the local control plane and run the demo
	@$(UV) run python -m gitmoor.demo --home $(CLUSTER_HOME)

demo-down: deps ## stop what the demo started (server, controller, control plane)
	@$(UV) run python -m gitmoor.demo --down
	@$(UV) run python -m gitmoor.testenv down --home $(CLUSTER_HOME)

chromium: ## Debian's Chromium for the browser tests (apt-get installs it where it can)
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || true; fi
	@[ -x /usr/bin/chromium ] || { echo "$(CHROMIUM_MISSING)"; exit 1; }

ui-vendor: ## copy htmx from the npm registry (pinned by package-lock.json) into the UI's static/vendor/
	@command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Debian's \`npm\` package (apt-get install npm)"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  cp $(UI_DIR)/package.json $(UI_DIR)/package-lock.json "$$tmp"/ && \
	  (cd "$$tmp" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error) && \
	  install -m 0644 "$$tmp"/node_modules/htmx.org/dist/htmx.min.js $(UI_DIR)/static/vendor/htmx.min.js && \
	  install -m 0644 "$$tmp"/node_modules/htmx.org/LICENSE $(UI_DIR)/static/vendor/htmx.LICENSE && \
	  (cd $(UI_DIR)/static/vendor && sha256sum htmx.min.js htmx.LICENSE > SHA256SUMS) && \
	  echo "vendored: $$(cd $(UI_DIR)/static/vendor && tr '\n' ' ' < SHA256SUMS)"

test: deps binaries chromium image-tools ## run every test (unit and integration, on a real control plane and Chromium)
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

schemas: cluster ## regenerate gitmoor lint's OpenAPI schemas from the local control plane's API server
	@$(UV) run python -m gitmoor.lint.schemagen --kubeconfig $(CLUSTER_HOME)/kubeconfig

bench: deps binaries ## run the benchmarks and print their figures
	@$(UV) run python bench/run.py

image-tools: ## mmdebstrap and umoci, the daemonless image builders (apt-get installs them where it can)
	@if ! command -v mmdebstrap >/dev/null 2>&1 || ! command -v umoci >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then echo "make image needs root, mmdebstrap and umoci (the image tests skip)"; \
	  else apt-get update -qq && apt-get install -y -qq mmdebstrap umoci >/dev/null; fi; fi

image: deps image-tools ## build the container image into .local/image/oci (no Docker, no base image); print its digest
	@bash image/build.sh

image-pin: image ## build the image, then pin deploy/ to its digest (kustomize images: digest:)
	@python3 image/pin.py "$$(cat .local/image/digest)"
