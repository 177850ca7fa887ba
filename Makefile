# make run: set up .venv and run the quickstart.   make test: set up .venv and run the tests.
# The set-up installs torch==2.13.0 only when no torch is there (the CPU build on a CPU machine, the usual
# release on a GPU box), then installs the project with a constraints file that holds torch where it is,
# so that no later step swaps torch or pulls gigabytes of CUDA packages it does not need.
# --no-compile: byte-compiling every installed file took most of the install (torch 33 s -> 7 s, the rest
# 44 s -> 14 s); Python compiles the modules it imports on first use instead.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test bench setup clean

setup: $(DEV_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --no-compile torch==$(TORCH_VERSION)
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PY) -m pip install -q --no-compile -c $(VENV)/constraints.txt -e .
	touch $(STAMP)

# the test tools (pytest, ruff, hypothesis) only where tests run: `make run` on a fresh clone skips them (about 7 s)
$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q --no-compile -c $(VENV)/constraints.txt -e ".[dev]"
	touch $(DEV_STAMP)

run: $(STAMP)
	$(VENV)/bin/reasonforge run recipes/quickstart.yaml
	$(VENV)/bin/reasonforge cost runs/quickstart

test: $(DEV_STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs
