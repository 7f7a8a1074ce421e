# `make demo` and `make test` build .venv on first use (pinned by
# constraints.txt), then run. `make bench` runs the side-by-side benchmarks.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hospfed-installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[torch,dev]"
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hospfed-sim heart --strategy fedyogi --epsilon 1 --out results/demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy resolves `hospfed.*` through a link tree that mirrors the installed
# package layout (setuptools' editable finder is invisible to mypy).
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/hospfed
	for d in common client server simulations; do ln -s ../../../$$d build/typecheck/hospfed/$$d; done
	cd build/typecheck && MYPYPATH=. ../../$(BIN)/mypy --config-file ../../pyproject.toml -p hospfed

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

test: lint typecheck $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_heart_sim.py
	$(BIN)/python benchmarks/bench_dp_step.py
	$(BIN)/python benchmarks/bench_encryption.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_deid.py
	$(BIN)/python benchmarks/bench_privacy_stack.py
	$(BIN)/python benchmarks/bench_deployment.py

clean:
	rm -rf $(VENV) results benchmarks/out
