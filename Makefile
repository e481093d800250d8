# kinkgrad: two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml src/kinkgrad/_kernels.c src/kinkgrad/_dispatch.c
	$(PY) -m venv $(VENV)
	# torch is pinned here: on our machines 2.13.0 is a CPU build already on disk.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev,experiments,dask,parquet]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kinkgrad demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache src/kinkgrad/*.so
