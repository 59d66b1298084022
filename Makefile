# StreamForge — the two commands of the README:
#   make run    create .venv, install, start the StreamForge demo (mock provider + failover)
#   make serve  the same install, then StreamForge itself against your real providers
#   make test   install dev extras, lint, type-check, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run serve test lint typecheck unit install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/streamforge demo

serve: install
	$(BIN)/streamforge serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy src

# Four workers, one test file each at a time: most tests wait on real-time
# streams, so the suite runs ~2.5x faster than in one process on 2 cores.
PYTEST_WORKERS ?= 4

unit: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
