# Two commands set everything up on a fresh machine (Python 3.11 and make): `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/var/dagster_home
# The demo's emails name a data team (Reply-To, List-Unsubscribe, alerts) unless you set your own address.
DEMO_TEAM := $${POS_EXPORTS_DATA_TEAM_EMAIL:-data-team@pos-exports.example}

.PHONY: demo test dev bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml  ## build the demo POS database, archive recent days
	POS_EXPORTS_DATA_TEAM_EMAIL=$(DEMO_TEAM) $(BIN)/pos-exports demo

dev: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml  ## the Dagster UI on the demo (http://127.0.0.1:3000)
	POS_EXPORTS_DATA_TEAM_EMAIL=$(DEMO_TEAM) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: $(VENV)/.installed-test  ## the whole test suite
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed-test  ## archive and render benchmarks against their floors (see BENCHMARKS.md)
	$(BIN)/python benchmarks/archive_benchmark.py
	$(BIN)/python benchmarks/render_benchmark.py
	$(BIN)/python benchmarks/fleet_benchmark.py --businesses 200

lint: $(VENV)/.installed-test
	$(BIN)/ruff check pos_exports pos_exports_tests benchmarks
	$(BIN)/ruff format --check pos_exports pos_exports_tests benchmarks

clean:
	rm -rf var
