# Two commands on a fresh machine (Python 3.11+ and make): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench ui-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# the TEST04 notebook, headless, against the embedded mock: out/test04.ipynb, out/test04.html,
# artifacts in out/TEST04/; prints the verdict and the file paths
demo: $(STAMP)
	$(BIN)/auditkit notebook test04 --html --output-dir out

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q
	$(BIN)/pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env notebooks/

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/client_throughput.py

clean:
	rm -rf $(VENV) out auditkit-out .pytest_cache .mypy_cache .ruff_cache

# opt-in browser check of the widget UI (JupyterLab + headless Chromium; not part of `test`):
# needs Debian's chromium + chromium-driver; screenshot in out/ui_check.png
ui-check: $(STAMP)
	$(BIN)/pip install -q -e '.[ui]'
	$(BIN)/python scripts/ui_check.py
