# The two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
DB     ?= graph_runtime.db

.PHONY: run demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,openai]'
	touch $(STAMP)

## run: create the venv, install, and serve the API on SQLite with the example workflows
run: $(STAMP)
	@echo "graph-runtime on http://$(HOST):$(PORT)  (API docs: /docs, database: $(DB))"
	@echo "try: curl -s -X POST http://$(HOST):$(PORT)/api/v1/execute -H 'content-type: application/json' \\"
	@echo "       -d '{\"workflow_id\": \"routing\", \"input_data\": {\"ticket\": \"refund please\"}}'"
	$(BIN)/graph-runtime serve --host $(HOST) --port $(PORT) --db $(DB) --workflows examples --tools examples.support_tools:TOOLS

## demo: run the example workflows once from the command line, without a server
demo: $(STAMP)
	$(BIN)/graph-runtime run examples/routing.json --db $(DB) --input '{"ticket": "I want a refund for order 42", "customer": "Ada"}'
	$(BIN)/graph-runtime run examples/map_loop.json --db $(DB) --input '{"items": ["apples", "pears"], "rounds": 2}'

## test: create the venv, install, lint, type-check and run the whole suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
