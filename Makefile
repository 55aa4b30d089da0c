# Two commands: `make run` serves the bundled models, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-test run test lint typecheck pytest bench-accuracy bench-throughput bench-streaming bench-router clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps -r diarization-requirements.txt

install-test: $(BIN)/python
	./scripts/install-system-deps.sh
	./scripts/install-chart-tools.sh
	./scripts/install-image-tools.sh $(VENV)
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet --no-deps -r diarization-requirements.txt

run: install
	$(BIN)/stenostack serve --host $(HOST) --port $(PORT)

lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install-test
	$(BIN)/mypy

pytest: install-test
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench-accuracy: install-test
	$(BIN)/python -m benchmarks.accuracy

bench-streaming: install-test
	$(BIN)/python -m benchmarks.streaming_latency --model whisper-tiny.en

bench-router: install-test
	$(BIN)/python -m benchmarks.router_overhead

bench-throughput: install-test
	-$(BIN)/python -m benchmarks.throughput --model whisper-tiny.en
	$(BIN)/python -m benchmarks.throughput --model whisper-base

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
