# The project's commands. Every target that needs Python creates .venv first if it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup tutorial test test-all test-study lab student student-lab book book-check lab-check bench full lint clean

## setup: create .venv and install the package with its dev extras
setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## tutorial: run the whole series with the offline quick profile (executed notebooks in runs/quick)
tutorial: setup
	$(BIN)/python -m pdc_utils run --profile quick

## test: the test suite, including a papermill smoke run of every notebook
## (two pytest workers: much of the suite is single-threaded tracing and kernel start-up;
## the slowest duplicates of covered paths are marked `slow` and left to test-all;
## the 15 longest tests are listed at the end)
test: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -n 2 -m "not slow" --durations=15

## test-all: the whole suite, the `slow` variants included
test-all: setup
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -n 2

## test-study: the study command's tests (plans against the committed digits tables, reports
## remade from the committed scores, shards, locks); E2E=1 adds the end-to-end smoke study
## (both stages, three concurrent shards, a killed shard restarted: minutes of training)
test-study: setup
	$(BIN)/python -m pytest tests/test_study.py $(if $(E2E),tests/test_study_e2e.py)

## lab: open the notebooks in JupyterLab (the lecturer's copies, with the solutions), with the
## course's settings (lab-settings/overrides.json: no news pop-up, no update check)
LAB := $(BIN)/jupyter lab --LabApp.app_settings_dir='$(CURDIR)/lab-settings'
lab: setup
	$(LAB) notebooks/

## student: the notebooks for students in student/: no solution cells, no lecturer notes, no
## outputs. Copies already there may hold a student's work: they are kept unless FORCE=1
student: setup
	@if [ -z "$(FORCE)" ] && ls student/[0-9][0-9]_*.ipynb >/dev/null 2>&1; then \
		echo "student/ already holds student copies, perhaps with a student's work: kept as" \
			"they are (make student FORCE=1 replaces them, as --force does)"; \
	else \
		$(BIN)/python -m pdc_utils student-copies --out student $(if $(FORCE),--force) && \
		echo "open them with: make student-lab"; \
	fi

## student-lab: make student, then open student/ in JupyterLab
student-lab: student
	$(LAB) student/

## book: the course as a website in book/_build/html, from the executed notebooks of a run:
## RUN=quick by default (run first if it is missing), EDITION=lecturer (solutions collapsed)
## or EDITION=student (no solutions). Open book/_build/html/index.html, or copy the folder to
## any static host
RUN     ?= quick
EDITION ?= lecturer
book: setup
	$(BIN)/python -m pdc_utils book --run '$(RUN)' --edition '$(EDITION)'

## book-check: the built book in headless Chromium with no network (pages, images, formulas,
## navigation, search); a screenshot per page in book/_build/screenshots
book-check: setup
	$(BIN)/python tests/browser/check_book.py book/_build/html

## lab-check: fresh students' copies (in build/lab-check) run with Run All in JupyterLab in
## headless Chromium, as a student does: any error, warning or log output is a problem.
## Reads runs/quick: make tutorial first. NOTEBOOKS="02 04" checks some of them.
lab-check: setup
	$(BIN)/python -m pdc_utils student-copies --out build/lab-check --force
	$(BIN)/python tests/browser/check_lab.py build/lab-check $(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS))

## bench: the benchmarks of bench/, tables written to bench/results/
bench: setup
	$(BIN)/python bench/bench_distance.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_attacks.py

## full: the paper's CIFAR-10 row on a GPU, under the paper's protocol (ε in normalised
## units, no clipping, PGD with a random start); pip install -e '.[gpu]' first for CUDA
full: setup
	$(BIN)/python -m pdc_utils run --profile cifar10 -p protocol=paper

## lint: ruff
lint: setup
	$(BIN)/python -m ruff check .

## clean: remove caches and the built book (keeps .venv, runs/ and figures/)
clean:
	rm -rf .pytest_cache .ruff_cache build *.egg-info book/_build
