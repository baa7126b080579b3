# Two commands a new user needs:  `make demo`  and  `make test`.
# torch is installed first and pinned, so pip takes the CPU build and never pulls CUDA wheels.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup system-deps demo test test-fast test-ui docs-images ui bench clean
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test,server]"
	touch $(STAMP)

setup: $(STAMP)

## make system-deps: Debian packages the whole suite needs, installed in one apt step only when one is missing:
## chromium (the MLflow UI browser test, driven by the playwright package of the test extra) and postgresql
## (the tracking-server test's backend)
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium postgresql; \
	fi

## make demo: set up, train and analyse the demo runs on bundled data, print how to open the UI
demo: setup
	$(BIN)/latentdream demo

## make test: set up and run the whole suite (slow tests and the browser test included)
test: setup system-deps
	$(BIN)/python -m pytest -q

## make test-fast: the edit loop (slow tests skipped)
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

## make test-ui: the MLflow UI checked in headless Chromium (Debian's chromium + the playwright package)
test-ui: setup system-deps
	$(BIN)/python -m pytest -q tests/ui

## make docs-images: the browser test, keeping its screenshots in docs/img/ for the README
docs-images: setup system-deps
	LATENTDREAM_DOCS_IMAGES=docs/img $(BIN)/python -m pytest -q tests/ui

ui: setup
	$(BIN)/latentdream ui

bench: setup
	for b in benchmarks/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
