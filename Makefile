# Two entry points for a fresh machine (Python 3.11+, root or sudo for one system package):
#   make demo   sets up .venv and runs the main job (the default sweep), writing reports/out/index.html
#   make test   sets up .venv and runs the whole test suite (pytest, one worker per core: JOBS=auto)
# Setup creates .venv, installs the project with its dev and FPGA extras, and installs
# Icarus Verilog with apt-get when `iverilog` is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= auto
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup icarus lint clean

demo: setup
	rm -rf reports/out
	$(BIN)/accel sweep --out reports/out/sweep.parquet
	$(BIN)/accel report reports/out/sweep.parquet --out reports/out

test: setup
	$(BIN)/pytest -n $(JOBS) --dist worksteal

lint: setup
	$(BIN)/ruff check .

setup: $(VENV)/.installed icarus

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "accel needs Python 3.11 or newer, not " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,fpga]'
	touch $@

icarus:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing Icarus Verilog (apt-get install iverilog)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq iverilog; }

clean:
	rm -rf build sim_build reports/out .pytest_cache
