# The two commands a new user types are `make test` and `make book`; each creates .venv first
# when it is missing. Override TORCH for a CUDA build, e.g. `make setup TORCH="torch==2.13.0 --index-url ..."`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
TORCH  ?= torch==2.13.0
SCALE  ?= cpu
# Folder with one sub-folder per dataset (physionet2012/, mimic3/, ...); empty: $TARDIFF_DATA_DIR or data/
DATA_DIR ?=
# Stored runs the book renders instead of re-executing (results/<scale>/<chapter>/, e.g. the replicated
# simulator and PhysioNet runs); `make book RESULTS=` re-executes every chapter.
RESULTS ?= $(wildcard results/$(SCALE))
BIN     = $(VENV)/bin

# Test workers: one per core (pytest-xdist); `make test TEST_JOBS=0` runs in one process.
TEST_JOBS ?= auto

.PHONY: setup test test-slow book bench clean
setup: $(VENV)/.installed

# Re-install when the dependency list changes. torch first, pinned, so the package's
# loose `torch>=` requirement is already satisfied and pip never pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[book,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The suite less its end-to-end checks (marked slow), one test file per worker, so module-scoped
# fixtures (trained models) are built once. CI runs `make test-slow` after it: notebooks, book
# builds, the Dask clusters and gpu-check.
test: setup
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_JOBS) --dist loadfile

test-slow: setup
	$(BIN)/python -m pytest -m slow -n $(TEST_JOBS) --dist loadfile

book: setup
	$(BIN)/tardiff book --scale $(SCALE) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(RESULTS),--results $(RESULTS))

bench: setup
	$(BIN)/tardiff bench --json

clean:
	rm -rf _build book/experiments book/teaching book/results_table.md book/figures/results_overview.png book/figures/results_comparisons.png
