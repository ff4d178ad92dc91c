# ddpm_scratch — every entry point a newcomer needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Without a GPU take the CPU build of torch (pip would otherwise fetch a multi-GB CUDA build).
# Override on a GPU machine, e.g. `make TORCH=torch test`.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-fast lab notebooks release bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[course,dev]"
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with the package, course tools and test tools

demo: $(STAMP)  ## train on the built-in digits and write outputs/demo/ (3-4 minutes on 2 CPU cores)
	$(BIN)/ddpm-scratch demo --out outputs/demo

test: $(STAMP)  ## the whole suite: package, notebooks, nbgrader pipeline
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: $(STAMP)  ## package tests only (no notebooks, no nbgrader)
	$(BIN)/python -m pytest -n 2 -m "not course"

lab: $(STAMP)  ## open JupyterLab on the course (lessons/, assignments/)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter lab $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root,)

notebooks: $(STAMP)  ## build lessons/*.ipynb and solutions/ from the jupytext sources in course/
	$(BIN)/python tools/build_notebooks.py

release: notebooks  ## regenerate the student release assignments/ from solutions/ (nbgrader)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/release.py

bench: $(STAMP)  ## print the speed tables, then run the demo and print its quality figures (15-25 minutes; sampler_nfe alone 7-10)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks.train_throughput --threads 1
	$(BIN)/python -m benchmarks.step_overhead
	$(BIN)/python -m benchmarks.sampler_nfe
	$(BIN)/python -m benchmarks.likelihood_nfe --mixtures-only
	$(BIN)/python -m benchmarks.demo_quality

.PHONY: student-edition
student-edition: $(STAMP)  ## write dist/ddpm_scratch-student/ and its archives: what students get, no answers
	$(BIN)/python tools/student_edition.py

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .

clean:  ## remove the venv, caches and outputs
	rm -rf $(VENV) outputs .pytest_cache .hypothesis .ruff_cache
