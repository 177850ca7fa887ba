# make run: set up .venv and run the quickstart.   make test: set up .venv and run the tests.
# The set-up installs torch==2.13.0 only when no torch is there (the CPU build on a CPU machine, the usual
# release on a GPU box), then installs the project with a constraints file that holds torch where it is,
# so that no later step swaps torch or pulls gigabytes of CUDA packages it does not need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: run test bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/reasonforge run recipes/quickstart.yaml
	$(VENV)/bin/reasonforge cost runs/quickstart

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs
