# ddpm_scratch — every entry point a newcomer needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Without a GPU take the CPU build of torch (pip would otherwise fetch a multi-GB CUDA build).
# Override on a GPU machine, e.g. `make TORCH=torch test`.
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-fast test-browser test-headless chromium lab notebooks release bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[course,dev,browser]"
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with the package, course tools and test tools (Playwright included)

# The browser test (tests/browser) drives Debian's Chromium through Playwright; Playwright's own browser download is
# not used. Where no Chromium is found, apt-get installs Debian's package as root or with sudo (20 s to 1 minute);
# elsewhere the target stops and says what to install. DDPM_SCRATCH_CHROMIUM=/path/to/chrome picks another binary.
chromium:  ## make sure a Chromium for the browser test is there (apt-get install chromium where missing)
	@if [ -n "$$DDPM_SCRATCH_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 \
		|| command -v chromium-browser >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
		echo "installing Debian's chromium for the browser test (apt-get)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null; \
	else \
		echo "make test needs Chromium for the browser test (tests/browser): install Debian's package chromium" \
			"(sudo apt-get install chromium), or set DDPM_SCRATCH_CHROMIUM to a Chromium or Chrome binary." \
			"make test-fast runs without it." >&2; \
		exit 1; \
	fi

demo: $(STAMP)  ## train on the built-in digits and write outputs/demo/ (3-4 minutes on 2 CPU cores)
	$(BIN)/ddpm-scratch demo --out outputs/demo

# The lessons run to the end once, in the browser test; their plain-kernel run (marker `headless`) would run each a
# second time for the same verdict (every cell ran, no error), so make test leaves it to make test-headless.
test: $(STAMP) chromium  ## the whole suite: package, notebooks, nbgrader pipeline, the lessons in a browser
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 --dist loadfile -m "not headless"

test-fast: $(STAMP)  ## package tests only (no notebooks, no nbgrader, no browser)
	$(BIN)/python -m pytest -n 2 -m "not course"

test-headless: $(STAMP)  ## each lesson in a plain kernel in fast mode, as nbconvert runs it (no browser)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 -m headless

test-browser: $(STAMP) chromium  ## only the browser test: each lesson in JupyterLab in headless Chromium (about 1.5 min on 2 cores, load 2)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest tests/browser

lab: $(STAMP)  ## open JupyterLab on the course (lessons/, assignments/)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter lab $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root,)

notebooks: $(STAMP)  ## build lessons/*.ipynb and solutions/ from the jupytext sources in course/
	$(BIN)/python tools/build_notebooks.py

release: notebooks  ## regenerate the student release assignments/ from solutions/ (nbgrader)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python tools/release.py

bench: $(STAMP)  ## print the speed tables, then run the demo and print its quality figures (70-90 minutes; sampler_nfe alone 7-10, guidance_exact about 10, cascade_digits 20-25, applications 20-25)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m benchmarks.train_throughput --threads 1
	$(BIN)/python -m benchmarks.step_overhead
	$(BIN)/python -m benchmarks.sampler_nfe
	$(BIN)/python -m benchmarks.likelihood_nfe --mixtures-only
	$(BIN)/python -m benchmarks.guidance_cost
	$(BIN)/python -m benchmarks.guidance_exact
	$(BIN)/python -m benchmarks.guidance_digits
	$(BIN)/python -m benchmarks.cascade_digits
	$(BIN)/python -m benchmarks.discrete_digits --threads 1
	$(BIN)/python -m benchmarks.applications --out runs/bench_applications
	$(BIN)/python -m benchmarks.demo_quality

.PHONY: student-edition
student-edition: $(STAMP)  ## write dist/ddpm_scratch-student/ and its archives: what students get, no answers
	$(BIN)/python tools/student_edition.py

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .

clean:  ## remove the venv, caches and outputs
	rm -rf $(VENV) outputs .pytest_cache .hypothesis .ruff_cache
