# Fresh-machine set-up: a local virtual environment in .venv.
# torch 2.13.0 is installed first and on its own: it is a CPU build already on these
# machines; any other torch request pulls several GB of CUDA packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH := torch==2.13.0

.PHONY: install train test lint format type benchmark

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install $(TORCH)
	$(PIP) install -e ".[envs,dev,export,distributed]" $(TORCH)
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) scripts/main_job.py

test: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check sb3_recurrent_ext tests scripts

format: install
	$(VENV)/bin/ruff format sb3_recurrent_ext tests scripts
	$(VENV)/bin/ruff check --fix sb3_recurrent_ext tests scripts

type: install
	$(VENV)/bin/mypy

benchmark: install
	$(PY) scripts/benchmark.py
