# seestocks-rank: `make demo` sets up and runs the pipeline on the embedded demo; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(or $(SEESTOCKS_DATA_DIR),$(CURDIR)/data)
export SEESTOCKS_DATA_DIR := $(DATA_DIR)
export DAGSTER_HOME ?= $(DATA_DIR)/dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup lock demo test test-fast gpu-check lint ui validate clean bench-quality bench-scale

setup: $(VENV)/.installed

# torch/torchvision are pinned to the releases pip finds on this machine's disk (a CUDA build that runs on CPU);
# faiss is faiss-gpu on Linux x86_64, which runs CPU indexes too (bench/results/faiss_gpu_packaging.md).
# constraints.txt pins every package to the versions the tests passed with (reproducible installs);
# regenerate it with `make lock` after changing a dependency.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@# a venv from before faiss-gpu still has faiss-cpu, whose `faiss` module one of them overwrote: keep faiss-gpu's
	if $(BIN)/pip show --quiet faiss-gpu 2>/dev/null && $(BIN)/pip show --quiet faiss-cpu 2>/dev/null; then \
	  $(BIN)/pip uninstall --quiet --yes faiss-cpu && \
	  $(BIN)/pip install --quiet --no-deps --force-reinstall -c constraints.txt faiss-gpu; fi
	touch $@

lock: setup
	$(BIN)/pip freeze --exclude-editable | grep -v '^pip==' > constraints.txt

demo: setup
	$(BIN)/seestocks-rank demo

test: setup
	$(BIN)/pytest -q

# the quick loop while developing: without the minutes-long real-process and real-model tests
test-fast: setup
	$(BIN)/pytest -q -m "not slow"

# The GPU checks (tests/gpu): each CUDA path run for real on tiny inputs against the CPU. On a host without
# CUDA it stops with an error, so a skip is never taken for a pass; `make test` just skips them there.
gpu-check: setup
	@$(BIN)/python -c "import sys, torch; torch.cuda.is_available() or sys.exit('no CUDA device: GPU checks skipped (make gpu-check needs a CUDA host)')"
	$(BIN)/pytest -m gpu tests/gpu -rs

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

validate: setup
	mkdir -p $(DAGSTER_HOME) && cp -n dagster.yaml $(DAGSTER_HOME)/ || true
	$(BIN)/dagster definitions validate -w workspace.yaml

# The webserver and the daemon (schedule, sensors, run queue, automation) on the data root's instance.
# UI_HOST=0.0.0.0 exposes the UI beyond this machine (it has no login: put it behind one).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
ui: setup
	mkdir -p $(DAGSTER_HOME) && cp -n dagster.yaml $(DAGSTER_HOME)/ || true
	$(BIN)/dagster dev -w workspace.yaml -h $(UI_HOST) -p $(UI_PORT)

bench-quality: setup
	$(BIN)/python -m seestocks_rank.benchmarks.quality

SCALE ?= 1.0
# ENCODERS=1: the full and incremental nights through Dagster with the real MiniLM models
bench-scale: setup
	$(BIN)/python -m seestocks_rank.benchmarks.scale --scale $(SCALE) $(if $(ENCODERS),--with-encoders)

clean:
	rm -rf $(DATA_DIR)
