# HowlerHire Jobs — every command a developer or CI needs. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install up demo test test-slow check format bench deploy-check nats-config clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its pinned dependencies

up: $(STAMP) ## run the whole stack locally (embedded NATS and PostgreSQL, every service)
	$(BIN)/howlerhire up

demo: $(STAMP) ## run the stack with a demo user and one command per workflow
	$(BIN)/howlerhire up --demo

test: $(STAMP) ## run the test suite (everything but the slow marker)
	$(BIN)/python -m pytest -m 'not slow'

test-slow: $(STAMP) ## run the slow suites (installs the bench extra: the bench smoke test runs every script)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,bench]'
	$(BIN)/python -m pytest -m slow

check: $(STAMP) ## lint, format check and type check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

BENCHES := engine floor peer_dbos gateway scale sleepers coldstart notify discovery parsing_speed parsing_eval llm sealing
bench: $(STAMP) ## run every benchmark in quick mode (FULL=1: the full runs); results: bench/README.md
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,bench]'
	@for b in $(BENCHES); do \
		echo "== python -m bench.$$b $(if $(FULL),,--quick)"; \
		$(BIN)/python -m bench.$$b $(if $(FULL),,--quick) || exit 1; \
	done

deploy-check: $(STAMP) ## validate compose files and Kubernetes manifests offline (real compose binary, kustomize, schemas)
	PYTHON=$(BIN)/python deploy/check.sh

nats-config: $(STAMP) ## write deploy/nats-auth.conf and the NATS passwords in .env (kept if present)
	$(BIN)/howlerhire nats-config --env-file .env --out deploy/nats-auth.conf

clean: ## remove the environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
