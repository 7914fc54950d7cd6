# The two set-up commands: `make demo` and `make test`. Each creates .venv if needed.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: install demo lint test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/twinloop demo $(ARGS)

# ruff on the code, tests and benches; mypy on the packages (configured in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: install
	$(PY) -m pytest $(ARGS)

bench: install
	$(PY) bench/fleet.py
	$(PY) bench/plant_speed.py
	$(PY) bench/opcua.py
	$(PY) bench/mqtt.py
	$(PY) bench/safety.py
	$(PY) bench/restart.py
	$(PY) bench/asset_memory.py
	$(PY) bench/pilot_memory.py
	$(PY) bench/estimators.py
	$(PY) bench/mpc.py
	$(PY) bench/plan.py
	$(PY) bench/whatif.py
	$(PY) bench/historian.py
	$(PY) bench/console.py
	$(PY) bench/http_load.py

clean:
	rm -rf $(VENV) var .pytest_cache
