# The two commands of the README: `make demo` and `make test`. Each creates .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo walkthrough test gate lint bench digests clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "haechi needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

# The gateway end to end on embedded defaults: stub model API, signed sandboxed plugins, audit.
demo: $(VENV)/.installed
	$(BIN)/haechi demo

# Signing and verification of a plugin bundle, step by step.
walkthrough: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" bash docs/examples/walkthrough.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict trust

test: lint
	$(BIN)/pytest

# The named security gate (tests/gate/gates.toml): one row per property, each proven by tests.
gate: $(VENV)/.installed-dev
	$(BIN)/python tests/gate/run.py

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/verify.py

# After changing a first-party plugin: refresh the digest list it ships with.
digests: $(VENV)/.installed
	$(BIN)/python -c 'from haechi.host.authoring.firstparty import write_digests; print(write_digests())'

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
