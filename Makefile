# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PRESET ?= laptop

.PHONY: demo test lab install system-deps clean bench lint

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --quiet -e '.[dev]'  # -qq: no build-backend chatter in the log
	@bash scripts/system_deps.sh
	@touch $(STAMP)

install: $(STAMP)

## The main job: run the notebook tour on the shipped defaults into build/ (executed notebooks,
## HTML, WAV files, summary.md).
demo: $(STAMP)
	$(PY) -m ditto2_nb.notebook.pipeline --preset $(PRESET) --out build

## The whole test suite (unit, contract, bad input, notebook runs on the ci preset, nbval).
test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

bench: $(STAMP)
	$(PY) benchmarks/bench_data.py

lint: $(STAMP)
	$(VENV)/bin/ruff check ditto2_nb tests benchmarks scripts

clean:
	rm -rf build .pytest_cache
