# siaga112: the two commands the README starts with.
.PHONY: setup test demo lint typecheck unit integration clean

VENV := .venv/bin

setup:
	bash scripts/setup.sh

# Whole suite: lint, types, unit, replay and real-Asterisk integration tests.
test: setup
	$(VENV)/ruff check .
	$(VENV)/mypy
	$(VENV)/python -m pytest

demo: setup
	$(VENV)/siaga112 demo

lint:
	$(VENV)/ruff check .

typecheck:
	$(VENV)/mypy

unit:
	$(VENV)/python -m pytest tests/unit tests/replay

integration:
	$(VENV)/python -m pytest tests/integration

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
