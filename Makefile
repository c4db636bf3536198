# The two commands a newcomer needs are `make demo` and `make test`; both set up first.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test formal fuzz soak coverage docs clean

# Icarus, the LZ4 and zlib headers and libraries of Verilator's FST writer (waveforms),
# ccache, through which the Verilator builds compile (sim/build.py), and chromium with its
# driver, which show tessera serve's page to tests/test_serve.py.
setup: $(STAMP)
	@{ command -v iverilog && command -v ccache && command -v chromium && command -v chromedriver && [ -e /usr/include/lz4.h ] && [ -e /usr/include/zlib.h ]; } >/dev/null \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q iverilog liblz4-dev zlib1g-dev ccache chromium chromium-driver; }
	@iverilog -V 2>/dev/null | head -n 1

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q -e .
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tessera run --tokens 128 --wafer 3x1 --head-tiles 4 --threads 2 --json build/demo/run.json

test: setup
	$(VENV)/bin/pytest -n 2 -q

# The proofs of sim/formal.py (also run by `make test`, in tests/test_formal.py).
formal: setup
	$(PYTHON) -m sim.formal

# Every fuzz target of tests/test_fuzz.py at 10,000 examples or more (make test runs a
# small fixed-seed profile); the statistics give each target's count.
fuzz: setup
	TESSERA_FUZZ=full $(VENV)/bin/pytest -n 2 -q --hypothesis-show-statistics tests/test_fuzz.py

# Not in CI: SOAK_WAVELETS random wavelets with back-pressure through the router on
# each simulator (tests/test_router_cocotb.py's random_traffic), one after the other.
SOAK_WAVELETS := 1000000
SOAK_TESTS    := $(foreach sim,verilator icarus,"tests/test_router_cocotb.py::test_router_cocotb[$(sim)-test-random_traffic]")
# Then SOAK_OPERANDS random operands through each float unit (30,000 in make test).
SOAK_OPERANDS := 1000000
soak: setup
	TESSERA_WAVELETS=$(SOAK_WAVELETS) $(VENV)/bin/pytest -q $(SOAK_TESTS)
	@grep -h "random_traffic seed" build/tests/router-*-test-random_traffic-$(SOAK_WAVELETS)/sim.log
	TESSERA_FLOAT_OPERANDS=$(SOAK_OPERANDS) $(VENV)/bin/pytest -q -n 2 tests/test_float_units.py

# Line and toggle coverage of the router's and the core's Verilator regressions
# (docs/coverage.md): a coverage build of each model, the cocotb tests, and the merged
# reports in build/coverage/ (summary.txt, uncovered.txt, coverage.info).
# The core's coverage model is compiled at -O0 and runs slowly, so it runs fewer random
# programs than make test's 460; COVERAGE_PROGRAMS=460 runs them all.
COVERAGE_TESTS := tests/test_router_cocotb.py tests/test_core_cocotb.py
COVERAGE_PROGRAMS := 300
coverage: setup
	rm -rf build/tests/coverage build/coverage
	TESSERA_COVERAGE=1 TESSERA_PROGRAMS=$(COVERAGE_PROGRAMS) $(VENV)/bin/pytest -q -n 2 -k verilator $(COVERAGE_TESTS)
	$(PYTHON) -m sim.coverage build/coverage build/tests/coverage/*/coverage.dat

# The generated documents: the ISA reference from rtl/isa.py.
docs: setup
	$(PYTHON) -m host.isa_reference

clean:
	rm -rf build
