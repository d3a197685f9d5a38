VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: help install test test-quick coverage lint demo bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## create .venv and install lit-nst with its dev tools
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'

# The tests spread over the cores, each worker's torch on its share of them (tests/conftest.py); at most 4
# workers, each holding torch and the weights.
PYTEST_ARGS := -q -n auto --maxprocesses 4

test: ## run the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

test-quick: ## the suite less its slow tests (DDP launches, signals, the installed script, long runs): the inner loop
	$(BIN)/pytest $(PYTEST_ARGS) -m "not slow"

coverage: ## line coverage of lit_nst/ across every process the suite starts, DDP ranks included
	rm -rf .coverage-data && mkdir .coverage-data
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report

lint: ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# fast.yaml's scales with fewer steps, most of them small: a 512-px step costs 20 128-px ones (BENCHMARKS.md, Demo)
demo: ## stylize the bundled astronaut photo with Starry Night into outputs/ (its time: BENCHMARKS.md, Demo)
	$(BIN)/lit-nst fit --config configs/fast.yaml --data.steps '[60,40,12]' \
		--data.content assets/astronaut.jpg --data.style assets/starry_night.jpg \
		--output.path outputs/astronaut__starry_night.png --output.panel true

bench: ## seconds per step, peak memory and overhead; writes BENCHMARKS.md
	$(PY) benchmarks/bench.py --write
