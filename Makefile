# fastalign developer entry points. On a fresh machine (Python >= 3.10, a Rust toolchain):
#   make bench   -> creates .venv, builds the Rust extension, runs `fastalign bench`
#   make test    -> creates .venv, builds, runs the Rust and Python test suites
# VENV can point elsewhere (CI keeps one outside the clone to reuse it between runs).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# Extras installed into the venv: the test dependencies and the dev tools.
EXTRAS ?= test,dev
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: all env build test test-python test-rust lint fmt bench bench-pytest gpu clean

all: test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "maturin>=1.7,<2"

# Build the extension (incremental, release) and install the package editable with extras.
build: $(PY)
	@echo "building fastalign (release) into $(VENV); log: $(VENV)/build.log"
	@VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/maturin develop --release -E $(EXTRAS) \
		> $(VENV)/build.log 2>&1 || { tail -n 40 $(VENV)/build.log; exit 1; }

env: build

test: build test-rust test-python

test-rust:
	cargo test --workspace --quiet

test-python: build
	$(PY) -m pytest $(PYTEST_ARGS)

lint: build
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(BIN)/ruff check python kernels tests benches examples
	$(BIN)/ruff format --check python kernels tests benches examples
	$(PY) -m mypy.stubtest fastalign._core --mypy-config-file pyproject.toml

fmt:
	cargo fmt --all
	$(BIN)/ruff format python kernels tests benches examples
	$(BIN)/ruff check --fix python kernels tests benches

bench: build
	$(BIN)/fastalign bench $(BENCH_ARGS)

# pytest-benchmark suites (not part of the test run): medians per group, baseline beside.
bench-pytest: build
	$(PY) -m pytest benches --benchmark-only --benchmark-group-by=group $(PYTEST_ARGS)

# On a CUDA machine: the GPU tests and the GPU benchmark script.
gpu: build
	$(PY) -m pytest tests/gpu -m gpu $(PYTEST_ARGS)
	$(PY) benches/gpu_logprobs.py

clean:
	rm -rf target dist .pytest_cache .hypothesis python/fastalign/_core*.so
