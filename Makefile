# Every target creates .venv on first use, so a fresh clone needs only Python 3.11 and PyPI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: run test generate bench fuzz clean

$(STAMP): setup.cfg setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/netgen build --depth 50 --shortcut B --out out/resnet50-B --force --weights
	$(BIN)/netgen validate out/resnet50-B

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadgroup tests

generate: $(STAMP)
	$(BIN)/python -m netgen.jobs.paper generate generated

bench: $(STAMP)
	$(BIN)/python -m netgen.jobs.benchmarks benchmarks/results.md

fuzz: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_fuzz.py --fuzz-examples 10000

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis
