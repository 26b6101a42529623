# Two commands on a fresh machine (Python 3.11+ and make): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit nbval strip-notebooks bench ui-check clean
# setuptools' "Editable installation" notice is information, not a warning about this project
QUIET_BUILD := PYTHONWARNINGS="ignore:Editable installation"
# JupyterLab started from this venv saves the shipped notebooks without outputs
# (the server extension auditkit.nbclean registers its pre-save hook; pip installs the same file)
JUPYTER_HOOK := $(VENV)/etc/jupyter/jupyter_server_config.d/auditkit.json

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(QUIET_BUILD) $(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(JUPYTER_HOOK): jupyter/jupyter_server_config.d/auditkit.json $(STAMP)
	mkdir -p $(dir $@) && cp $< $@

# the TEST04 notebook, headless, against the embedded mock: out/test04.ipynb, out/test04.html,
# artifacts in out/TEST04/ (replacing the previous demo's: -p overwrite true); prints the
# verdict and the file paths
demo: $(STAMP) $(JUPYTER_HOOK)
	$(BIN)/auditkit notebook test04 --html --output-dir out -p overwrite true

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest on two xdist workers (sized for a 2-core machine) with the notebooks (nbval) beside
# them, their report printed after the tests' (they fill the cores while tests wait on child
# processes), then the tests marked `timing` (they assert on wall-clock time) alone, one at a time.
# `pytest -m "not slow"` skips kernel runs and real processes: the quick inner loop.
# Temporary files go to /dev/shm (RAM) where there is one: the runs under test fsync every
# artifact they write (as they must), and on a disk those waits were half a simulated audit's
# wall time.
TEST_TMPDIR := $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))
unit: $(STAMP) $(JUPYTER_HOOK)
	@nblog=$$(mktemp) && { TMPDIR=$(TEST_TMPDIR) $(MAKE) --no-print-directory nbval \
		> $$nblog 2>&1 & nbpid=$$!; } && \
	TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest -q -p no:cacheprovider -n 2 -m "not timing"; rc=$$?; \
	wait $$nbpid; nbrc=$$?; echo "notebooks (nbval, run beside the tests above):"; \
	cat $$nblog; rm -f $$nblog; [ $$rc -eq 0 ] && [ $$nbrc -eq 0 ]
	TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest -q -p no:cacheprovider -m timing

# nbval runs copies of the notebooks in a temporary folder, so their outputs land there (never
# in out/): test04 + investigate_caching in one folder, audit then review_results (which
# reviews audit's run) in another. The folders are independent: one pytest each, side by side
# (within a folder the order matters, so no xdist)
nbval: $(STAMP)
	@tmp=$$(mktemp -d) && mkdir $$tmp/run $$tmp/review && \
	cp notebooks/test04.ipynb notebooks/investigate_caching.ipynb $$tmp/run/ && \
	cp notebooks/audit.ipynb notebooks/review_results.ipynb $$tmp/review/ && \
	pids= && for d in run review; do \
		$(BIN)/pytest -q -p no:cacheprovider -c pyproject.toml -p nbval --nbval-lax --nbval-current-env \
			$$tmp/$$d & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; rm -rf $$tmp; exit $$rc

# outputs out of the shipped notebooks (what the hygiene test asks for)
strip-notebooks: $(STAMP)
	$(BIN)/python -m auditkit.nbclean

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/client_throughput.py

clean:
	rm -rf $(VENV) out auditkit-out .pytest_cache .mypy_cache .ruff_cache

# opt-in browser check of the widget UI (JupyterLab + headless Chromium; not part of `test`):
# needs Debian's chromium + chromium-driver; screenshot in out/ui_check.png
ui-check: $(STAMP)
	$(QUIET_BUILD) $(BIN)/pip install -q -e '.[ui]'
	$(BIN)/python scripts/ui_check.py
