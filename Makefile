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
	libcrypt-dev apache2-utils libasio-dev libssl-dev openssl libre2-dev \
	libcurl4-openssl-dev etcd-server etcd-client prometheus-cpp-dev openssh-server
# Spill files' and KV cache blocks' checksums and keys.
APT_PACKAGES += libxxhash-dev
# Debian's Python headers only when this Python has none (pyenv builds ship their own).
HAVE_PY_HEADERS := $(shell $(PYTHON) -c "import os, sysconfig; \
	print(int(os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))))" 2>/dev/null)
APT_PACKAGES += $(if $(filter 1,$(HAVE_PY_HEADERS)),,python3-dev)
PIP_PACKAGES := pytest numpy nanobind "pandas<3" pyarrow pyyaml click rich kubernetes \
	prometheus_client fsspec cloudpickle scipy torch==2.13.0 "polars>=1.0,<3" \
	"dask[dataframe,distributed]"

.PHONY: all deps deps-apt deps-pip build run test test-cpp test-python test-compat bench bench-smoke baseline compat-venv clean
.PHONY: fuzz test-asan test-tsan

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
	@$(PYTHON) -c "import pytest, numpy, nanobind, pandas, pyarrow, yaml, click, rich, kubernetes, prometheus_client, fsspec, cloudpickle, scipy, torch, polars, dask.dataframe, distributed" 2>/dev/null || $(PYTHON) -m pip install -q $(PIP_PACKAGES)

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DVINEYARD_BUILD_TESTS=ON -DVINEYARD_BUILD_BENCHMARKS=ON \
		-DPython_EXECUTABLE=$$(command -v $(PYTHON))

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# vineyardd in the foreground, in a cluster through etcd at 127.0.0.1:2379 (started by
# vineyardd when none answers; standalone when there is no etcd binary).
run: build
	$(BUILD_DIR)/vineyardd --socket=$(SOCKET) --size=$(SIZE) $(ARGS)

# The published vineyard 0.24.2 client, in its own virtual environment.
compat-venv: $(COMPAT_VENV)/.done
$(COMPAT_VENV)/.done:
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q 'vineyard==0.24.2' 'numpy<2' 'pandas<2.2' 'pyarrow<16' pytest
	# its I/O drivers (their cloud filesystems' packages are not needed here)
	$(COMPAT_VENV)/bin/pip install -q --no-deps 'vineyard-io==0.24.2'
	$(COMPAT_VENV)/bin/pip install -q 'fsspec<2025' cloudpickle 'scipy<1.14'
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

# The protocol fuzzer's long run against a fresh vineyardd (not in CI): FUZZ_MESSAGES
# mutated requests over IPC and TCP; prints messages, time, crashes and the server's RSS.
FUZZ_MESSAGES ?= 1000000
FUZZ_SEED     ?= 1
fuzz: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target vineyardd vineyard_fuzz
	$(BUILD_DIR)/vineyard_fuzz --messages=$(FUZZ_MESSAGES) --seed=$(FUZZ_SEED)

# Sanitizer builds: the C++ suites (ctest, fuzz_test included with a shorter run) under
# ASan + UBSan, or TSan, in their own build directories (no Python module, no benchmarks).
# Every process (test binaries and the vineyardd they start) inherits the options, and the
# first report aborts it, so a test sees its server die. ASan and TSan also write their
# reports to <dir>/sanitizer-logs, which must stay empty; UBSan (GCC 12) ignores log_path
# and prints to the server's stderr, which ctest shows with the failing test.
# handle_segv=0: the suites check that writing a read-only blob mapping dies by SIGSEGV;
# the sanitizers' SEGV handler would turn that into an abort.
# quarantine_size_mb=64: ASan keeps freed memory in quarantine (256 MiB by default),
# which the fuzzer's bound on the server's RSS growth would count.
SAN_FUZZ_MESSAGES ?= 4000
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
SAN_COMMON = halt_on_error=1:abort_on_error=1:handle_segv=0:print_stacktrace=1

$(ASAN_DIR)/build.ninja $(TSAN_DIR)/build.ninja:
	cmake -S . -B $(dir $@) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DVINEYARD_SANITIZE=$(if $(findstring $(TSAN_DIR),$@),thread,address) \
		-DVINEYARD_BUILD_TESTS=ON -DVINEYARD_BUILD_BENCHMARKS=OFF -DVINEYARD_BUILD_PYTHON=OFF

# $(1): build directory; $(2): the environment of the sanitizer.
define run_sanitized
	cmake --build $(1) -j $(JOBS)
	rm -rf $(1)/sanitizer-logs && mkdir -p $(1)/sanitizer-logs
	cd $(1) && $(2) VINEYARD_FUZZ_MESSAGES=$(SAN_FUZZ_MESSAGES) \
		ctest --output-on-failure -j 2 --timeout 600; rc=$$?; \
	if [ -n "$$(ls sanitizer-logs)" ]; then \
		echo "sanitizer reports in $(1)/sanitizer-logs:"; cat sanitizer-logs/*; rc=1; \
	fi; exit $$rc
endef

test-asan: deps-apt $(ASAN_DIR)/build.ninja
	$(call run_sanitized,$(ASAN_DIR),\
		ASAN_OPTIONS=$(SAN_COMMON):detect_leaks=1:quarantine_size_mb=64:log_path=$(abspath $(ASAN_DIR))/sanitizer-logs/asan \
		UBSAN_OPTIONS=$(SAN_COMMON))

test-tsan: deps-apt $(TSAN_DIR)/build.ninja
	$(call run_sanitized,$(TSAN_DIR),\
		TSAN_OPTIONS=$(SAN_COMMON):second_deadlock_stack=1:log_path=$(abspath $(TSAN_DIR))/sanitizer-logs/tsan)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR)
