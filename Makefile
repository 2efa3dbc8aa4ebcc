# `make test` sets up everything and runs the whole suite on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test lint venv servers bench clean

test: venv servers lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(BIN)/.installed
$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

servers:
	@sh tests/start-servers.sh

lint: venv
	$(BIN)/ruff check .

bench: venv servers
	$(BIN)/python bench/mysql_sync_bench.py
	$(BIN)/python bench/ftp_ingest_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
