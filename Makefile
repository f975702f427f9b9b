# ClusterMatch: `make run` to serve, `make test` to test. Everything installs into .venv/.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint migrate prepare bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/python -m app.cli migrate

# Migrate, load the reference data and make sure a classifier version is active.
prepare: $(STAMP)
	$(BIN)/python -m app.cli prepare

run: prepare
	$(BIN)/python -m app.cli serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check app models scoring migrations tests bench clustermatch_client
	$(BIN)/ruff format --check app models scoring migrations tests bench clustermatch_client
	$(BIN)/mypy app models scoring clustermatch_client
	$(BIN)/hadolint Dockerfile

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var
