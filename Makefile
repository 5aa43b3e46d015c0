# fastalign developer entry points. On a fresh machine (Python >= 3.10, a Rust toolchain):
#   make bench   -> creates .venv, installs the locked test environment, builds, runs `fastalign bench`
#   make test    -> the same set-up, then the Rust and Python test suites
# VENV can point elsewhere (CI keeps one outside the clone to reuse it between runs).
#
# The environment is uv.lock (every package of the test and dev extras, torch included).
# `make sync` brings $(VENV) exactly to it: missing packages installed, other versions
# replaced, packages the lock does not name removed. `make test-latest` tries the newest
# releases pyproject.toml allows in a throwaway venv; `make lock` refreshes uv.lock to them
# (run it only after test-latest is green, then `make test`).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
UV     := $(BIN)/uv
# The uv that bootstraps a new venv (pip-installed once); from then on uv.lock pins the uv
# that stays in the venv (it is in the dev extra).
UV_BOOTSTRAP ?= uv==0.13.9
EXTRAS := --extra test --extra dev
LATEST_VENV ?= .venv-latest
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: all env sync build versions test test-python test-rust test-latest lock lint fmt bench \
	bench-pytest gpu clean

all: test

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(UV_BOOTSTRAP)"

# Exactly the locked environment (fails if uv.lock is stale against pyproject.toml: `make lock`).
sync: $(UV)
	@UV_PROJECT_ENVIRONMENT=$(abspath $(VENV)) $(UV) sync --locked --no-install-project $(EXTRAS)

# Build the extension (incremental, release) and install the package editable into a venv
# ($(1)); maturin and uv come from that venv.
define develop
	@echo "building fastalign (release) into $(1); log: $(1)/build.log"
	@PATH="$(abspath $(1))/bin:$$PATH" VIRTUAL_ENV=$(abspath $(1)) \
		$(1)/bin/maturin develop --release --uv > $(1)/build.log 2>&1 \
		|| { tail -n 40 $(1)/build.log; exit 1; }
endef

build: sync
	$(call develop,$(VENV))

# The versions that matter most, as installed (CI prints them at the top of its log).
versions:
	@$(PY) -c "import sys, importlib.metadata as m; print('python', sys.version.split()[0]); \
	[print(p, m.version(p)) for p in ('torch', 'triton', 'transformers', 'trl', 'numpy', 'kernels')]"

env: build

test: build test-rust test-python

# debug (overflow checks) and release (what the extension runs: the optimizer once dropped an
# allocation probe there, so a memory check passed that a debug build failed)
test-rust:
	cargo test --workspace --quiet
	cargo test -p fastalign-core --release --quiet

test-python: build
	$(PY) -m pytest $(PYTEST_ARGS)

# The newest releases pyproject.toml allows, in a throwaway venv (uv.lock untouched): the
# whole suite against what a fresh `pip install fastalign[test]` would get today.
test-latest: $(UV)
	rm -rf $(LATEST_VENV)
	$(UV) venv -q --python $(PYTHON) $(LATEST_VENV)
	$(UV) pip compile -q --upgrade --python $(LATEST_VENV)/bin/python pyproject.toml $(EXTRAS) \
		-o $(LATEST_VENV)/requirements.txt
	$(UV) pip sync -q --python $(LATEST_VENV)/bin/python $(LATEST_VENV)/requirements.txt
	$(call develop,$(LATEST_VENV))
	@$(MAKE) --no-print-directory versions VENV=$(LATEST_VENV)
	@$(PY) .ci/lock_drift.py $(LATEST_VENV)/requirements.txt
	$(LATEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)
	@echo "test-latest green; to lock these versions: make lock && make test"

# Refresh uv.lock to the newest releases (after a green `make test-latest`).
lock: $(UV)
	$(UV) lock --upgrade

lint: build
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	$(BIN)/ruff check python kernels tests benches examples .ci
	$(BIN)/ruff format --check python kernels tests benches examples .ci
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
	$(PY) benches/gpu_head.py

clean:
	rm -rf target dist .pytest_cache .hypothesis python/fastalign/_core*.so
