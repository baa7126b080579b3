# Two commands a new user needs:  `make demo`  and  `make test`.
# torch is installed first and pinned, so pip takes the CPU build and never pulls CUDA wheels.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: setup demo test test-fast test-ui ui bench clean
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test,server]"
	touch $(STAMP)

setup: $(STAMP)

## make demo: set up, train and analyse the demo runs on bundled data, print how to open the UI
demo: setup
	$(BIN)/latentdream demo

## make test: set up and run the whole suite (slow tests included)
test: setup
	$(BIN)/python -m pytest -q

## make test-fast: the edit loop (slow tests skipped)
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

## make test-ui: the MLflow UI checked in headless Chromium (Debian's chromium + the playwright package)
test-ui: setup
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)
	$(BIN)/pip install --quiet playwright
	$(BIN)/python -m pytest -q tests/ui

ui: setup
	$(BIN)/latentdream ui

bench: setup
	for b in benchmarks/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
