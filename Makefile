# Every entry point of the project. `make run` and `make test` work on a fresh
# machine: they install what is missing (apt + pip), build, then run.

PYTHON      ?= python3
BUILD_DIR   ?= build
SOCKET      ?= /var/run/vineyard.sock
SIZE        ?= 256Mi
ARGS        ?=
JOBS        ?= $(shell nproc)
COMPAT_VENV ?= $(BUILD_DIR)/venv-compat
# make bench: the server before the event loops, as a baseline
BASELINE_COMMIT ?= d76b34a
BASELINE_DIR    ?= $(BUILD_DIR)/baseline

APT_PACKAGES := build-essential pkg-config cmake ninja-build \
	libgtest-dev libgmock-dev libbenchmark-dev \
	libspdlog-dev nlohmann-json3-dev libgflags-dev libjemalloc-dev libzstd-dev \
	libcrypt-dev apache2-utils libasio-dev
# Debian's Python headers only when this Python has none (pyenv builds ship their own).
HAVE_PY_HEADERS := $(shell $(PYTHON) -c "import os, sysconfig; \
	print(int(os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))))" 2>/dev/null)
APT_PACKAGES += $(if $(filter 1,$(HAVE_PY_HEADERS)),,python3-dev)
PIP_PACKAGES := pytest numpy nanobind "pandas<3" pyarrow

.PHONY: all deps deps-apt deps-pip build run test test-cpp test-python test-compat bench bench-smoke baseline compat-venv clean

all: build

deps: deps-apt deps-pip

# Installs only what is missing, so a second run costs a second.
deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		SUDO=$$( [ $$(id -u) -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

deps-pip:
	@$(PYTHON) -c "import pytest, numpy, nanobind, pandas, pyarrow" 2>/dev/null || $(PYTHON) -m pip install -q $(PIP_PACKAGES)

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DVINEYARD_BUILD_TESTS=ON -DVINEYARD_BUILD_BENCHMARKS=ON \
		-DPython_EXECUTABLE=$$(command -v $(PYTHON))

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# vineyardd in the foreground, on the embedded local metadata backend.
run: build
	$(BUILD_DIR)/vineyardd --socket=$(SOCKET) --size=$(SIZE) --meta=local $(ARGS)

# The published vineyard 0.24.2 client, in its own virtual environment.
compat-venv: $(COMPAT_VENV)/.done
$(COMPAT_VENV)/.done:
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q 'vineyard==0.24.2' 'numpy<2' 'pandas<2.2' 'pyarrow<16' pytest
	touch $@

test-cpp: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 300

# vineyard._C (built into python/vineyard/) and the Python package, against $(BUILD_DIR)/vineyardd.
test-python: build compat-venv
	VINEYARDD=$(abspath $(BUILD_DIR)/vineyardd) PYTHONPATH=$(abspath python) \
		$(PYTHON) -m pytest -q tests/python

test-compat: build compat-venv
	VINEYARDD=$(abspath $(BUILD_DIR)/vineyardd) $(COMPAT_VENV)/bin/python -m pytest -q tests/compat

test: test-cpp test-python test-compat bench-smoke

# Python scenarios against the peers (each installed once into $(BUILD_DIR)/venv-*) and the
# C++ blob benchmark, into docs/benchmarks.md and docs/img/. QUICK=1: reduced sizes, < 5 min.
# The thread-per-connection server (the last commit before the event loops) is built once
# into $(BUILD_DIR)/baseline/ and driven by our client, next to the current one.
bench: build compat-venv baseline
	$(PYTHON) bench/py_bench.py --cpp --build-dir $(BUILD_DIR) --output docs/benchmarks.md \
		--baseline $(BASELINE_DIR)/vineyardd $(if $(QUICK),--quick,)

# vineyardd alone, from $(BASELINE_COMMIT)'s sources (git archive); skipped once built.
baseline: $(BASELINE_DIR)/vineyardd
$(BASELINE_DIR)/vineyardd:
	rm -rf $(BUILD_DIR)/baseline-src && mkdir -p $(BUILD_DIR)/baseline-src
	git archive $(BASELINE_COMMIT) | tar -x -C $(BUILD_DIR)/baseline-src
	cmake -S $(BUILD_DIR)/baseline-src -B $(BASELINE_DIR) -G Ninja \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DVINEYARD_BUILD_TESTS=OFF \
		-DVINEYARD_BUILD_BENCHMARKS=OFF -DVINEYARD_BUILD_PYTHON=OFF
	cmake --build $(BASELINE_DIR) -j $(JOBS) --target vineyardd

# The smallest case of every Python scenario, once, to prove the harness works (no timing
# is checked; Ray and Plasma are left to `make bench`).
bench-smoke: build compat-venv
	$(PYTHON) bench/py_bench.py --smoke --build-dir $(BUILD_DIR) --peers ours,published,shm,pickle

clean:
	rm -rf $(BUILD_DIR)
