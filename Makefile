# The returns playbook. `make weekly` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

WEEK ?=
DATA ?= data_samples
# empty: the source's own folders (reports/ and journal/ for data_samples/, reports/<source name>/ and
# journal/<source name>/ for any other source: playbook.core.paths.reports_dir_for)
OUT ?=
JOURNAL ?=
CONFIG ?=
FAIL_ON_RED ?=
# `make retail`: the real Online Retail export (beside the repository, ../shared/data/) and the folder it is adapted into
RETAIL_CSV ?= ../shared/data/online_retail.csv.xz
RETAIL_DATA ?= exports/online_retail
BENCH_ARGS ?=
LAB_ARGS ?=
# who runs `make lab` (Jupyter refuses root unless told --allow-root: containers and fresh servers run as root)
USER_ID ?= $(shell id -u)
KERNEL_NAME := returns-playbook
KERNEL_SPEC := $(VENV)/share/jupyter/kernels/$(KERNEL_NAME)/kernel.json
# the notebooks' kernel, registered inside the environment (--sys-prefix, not --user): nbconvert, VS Code and Lab
# find it there, and a second clone or a rebuilt .venv never leaves a spec in the home folder pointing at another
# interpreter; the spec runs this environment's python (ipykernel writes its full path)
REGISTER_KERNEL = $(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME) --display-name "Python ($(KERNEL_NAME))"

.PHONY: weekly retail season experiment-add experiment-close screenshots docs-screenshots test test-slow spark sample-data bench bench-large lab environment.yml docs/metrics.md docs/summary.schema.json clean help

help:
	@echo "make weekly [WEEK=2026-W47] [DATA=folder-or-url] [OUT=reports/<source>] [JOURNAL=journal/<source>] [CONFIG=file.yaml] [FAIL_ON_RED=1]"
	@echo "make retail [RETAIL_CSV=../shared/data/online_retail.csv.xz] [WEEK=2011-W48] (the real Online Retail export, adapted into exports/online_retail/, its week into reports/online_retail/<WEEK>/)"
	@echo "make experiment-add PLAN=reports/<WEEK>/experiments_plan.csv DATA=folder-or-url [START=YYYY-MM-DD] [JOURNAL=journal/<source>]"
	@echo "make experiment-close ID=<experiment_id> DATA=folder-or-url REASON='why it ended' [ON=YYYY-MM-DD]"
	@echo "make screenshots [WEEK=2026-W47] (after make weekly: the pages in headless Chromium, screenshots into OUT/<WEEK>/screenshots/)"
	@echo "make docs-screenshots (the same, then the index's and the brief's copied to docs/screenshots/ for the README)"
	@echo "make season [WEEKS=12] [SEED=N] [TRUTH=truth.yaml] [UNITS=2800] [SEASON_OUT=reports/season] (a season of the loop on a simulated shop, then the reveal)"
	@echo "make test | make test-slow | make spark | make sample-data | make bench | make lab [LAB_ARGS=...] | make clean"

# The environment: built once from pyproject.toml (the single source of dependencies), rebuilt when it changes.
# $(VENV)/.installed is the runtime only (`pip install -e .`: what `make weekly` and `make lab` need, with the
# notebooks' kernel registered); each extra adds its own stamp on top, once: $(VENV)/.installed-test (`make
# test`: pytest, ruff, Selenium, PySpark...), -spark (`make spark`), -browser (`make screenshots`). A changed
# pyproject.toml remakes the runtime stamp, and through it every extra's.
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(REGISTER_KERNEL)
	touch $@
	@echo "Installed: the command is $(abspath $(VENV))/bin/playbook. To call it as 'playbook' from any folder:"
	@echo "  ln -s $(abspath $(VENV))/bin/playbook ~/.local/bin/playbook   (or: export PATH=\"$(abspath $(VENV))/bin:\$$PATH\")"

$(VENV)/.installed-%: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[$*]'
	touch $@

# an environment installed before the install registered the kernel gets it here (once)
$(KERNEL_SPEC): | $(VENV)/.installed
	$(REGISTER_KERNEL)

# Spark through ibis's PySpark backend (about 470 MB; needs a Java runtime >= 17): DATA=pyspark://... or sc://...
spark: $(VENV)/.installed-spark

# the console script declared in pyproject.toml (installed with the environment); FAIL_ON_RED=1 makes reds exit 3;
# PARAMS=choices.yaml sets the analyst's choices (lever, design, expected range, windows...), recorded in the report;
# the notebooks that read nothing from each other run at once, up to PLAYBOOK_JOBS (environment; default the cores, 1: in turn)
weekly: $(VENV)/.installed $(KERNEL_SPEC)
	$(VENV)/bin/playbook weekly --week "$(WEEK)" --data "$(DATA)" --out "$(OUT)" --journal "$(JOURNAL)" --config "$(CONFIG)" $(if $(FAIL_ON_RED),--fail-on-red) $(if $(PARAMS),--params "$(PARAMS)")

# A real export from a fresh clone: the UCI Online Retail transactions (RETAIL_CSV, default beside the repository)
# adapted onto the contract into RETAIL_DATA (tables and shop.yaml: GBP, Europe/London), then its latest complete
# week (or WEEK) rendered into reports/online_retail/<WEEK>/ and recorded in journal/online_retail/ (the sample's
# reports/ and journal/ are left alone). Relative paths are read from here, the repository.
retail: $(VENV)/.installed $(KERNEL_SPEC)
	$(VENV)/bin/playbook adapt online-retail "$(RETAIL_CSV)" "$(RETAIL_DATA)"
	$(VENV)/bin/playbook weekly --week "$(WEEK)" --data "$(RETAIL_DATA)" --out "$(OUT)" --journal "$(JOURNAL)" --config "$(CONFIG)" $(if $(FAIL_ON_RED),--fail-on-red) $(if $(PARAMS),--params "$(PARAMS)")

# New hires: a season of the loop (issue 20). WEEKS weeks of a simulated shop, each week the real weekly run (about
# 25 seconds a week on 2 cores: 12 weeks in about 5 minutes), the team's actions, then SEASON_OUT/index.html: the
# decision journal beside the truth.
WEEKS ?= 12
SEED ?=
TRUTH ?=
UNITS ?=
SEASON_OUT ?= reports/season
season: $(VENV)/.installed $(KERNEL_SPEC)
	$(PY) -m playbook.sim.cli season --weeks $(WEEKS) --out "$(SEASON_OUT)" $(if $(SEED),--seed $(SEED)) $(if $(TRUTH),--truth "$(TRUTH)") $(if $(UNITS),--units $(UNITS)) $(if $(CONFIG),--config "$(CONFIG)")

# Step 3's plan row into DATA's experiments table (docs/method.md, "How the loop carries across weeks"), or a test closed;
# a database URL gets the SQL to run, never a write. DATA is required here: its default, data_samples/, is the repository's.
experiment-add: $(VENV)/.installed
	$(if $(filter file default,$(origin DATA)),$(error make experiment-add writes to DATA's experiments table: give DATA=folder-or-url))
	$(VENV)/bin/playbook experiments add "$(PLAN)" "$(DATA)" --journal "$(JOURNAL)" --config "$(CONFIG)" $(if $(START),--start "$(START)")

experiment-close: $(VENV)/.installed
	$(if $(filter file default,$(origin DATA)),$(error make experiment-close writes to DATA's experiments table: give DATA=folder-or-url))
	$(VENV)/bin/playbook experiments close "$(ID)" "$(DATA)" --reason "$(REASON)" --config "$(CONFIG)" $(if $(ON),--on "$(ON)")

# After `make weekly`: every page of the week (the latest in OUT, default reports/, when WEEK is empty) opened in headless Chromium
# (Debian: chromium, chromium-driver), its links, images, console, 390-pixel overflow, offline requests and headline
# numbers checked; screenshots saved in $(OUT)/<WEEK>/screenshots/ only (nothing tracked changes). Exits 1 when a
# page has a problem (listed), 2 without a browser. `make docs-screenshots` also copies the index's and the
# brief's to docs/screenshots/ (the README's pictures, committed): run it when the pages' look changed.
screenshots: $(VENV)/.installed-browser
	$(PY) -m playbook.dev.browser_check "$(or $(OUT),reports)$(if $(WEEK),/$(WEEK))"

docs-screenshots: $(VENV)/.installed-browser
	$(PY) -m playbook.dev.browser_check "$(or $(OUT),reports)$(if $(WEEK),/$(WEEK))" --copy-to docs/screenshots

# the test files run in parallel on every core (TEST_JOBS=1 for one process), a file's tests in one process: the
# session's rendered weeks and servers are started once per process
TEST_JOBS ?= auto
test: $(VENV)/.installed-test $(KERNEL_SPEC)
	$(VENV)/bin/ruff check playbook tests notebooks
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile

# The calibration simulations with many more replications (minutes, not seconds).
test-slow: $(VENV)/.installed-test
	$(PY) -m pytest -m slow

sample-data: $(VENV)/.installed
	$(PY) -m playbook.dev.sample_data --out data_samples

# BENCH_ARGS: e.g. --cycle-only --cycle-repeat 3, or --scales 1,5,20 (see docs/benchmarks.md). Without
# BENCH_ARGS, and with PostgreSQL available (PLAYBOOK_TEST_POSTGRES_URL, or its binaries for a throwaway
# server), the weekly run on PostgreSQL beside DuckDB follows (issue 12; --postgres alone: BENCH_ARGS=--postgres).
# The test extra: the throwaway server comes from tests/pg_server.py (pytest), the Spark section needs PySpark.
bench: $(VENV)/.installed-test
	$(PY) -m playbook.dev.bench $(BENCH_ARGS)
	@if [ -z "$(BENCH_ARGS)" ]; then \
	  if [ -n "$$PLAYBOOK_TEST_POSTGRES_URL" ] || command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	    $(PY) -m playbook.dev.bench --postgres; \
	  else echo "PostgreSQL not available: the side-by-side run is skipped (make bench BENCH_ARGS=--postgres)"; fi; \
	fi

# Issue 12: seeded shops of LARGE order lines (default 1M and 10M) as Parquet under .bench/, built block by block;
# on each, the whole weekly cycle, the steps and the heaviest aggregation against plain pandas (tens of minutes;
# see docs/benchmarks.md, "Ten million order lines"). BENCH_ARGS: e.g. --large-no-steps
LARGE ?= 1000000,10000000
bench-large: $(VENV)/.installed-test
	$(PY) -m playbook.dev.bench --large $(LARGE) $(BENCH_ARGS)

# The notebooks name the kernel KERNEL_NAME in their metadata; the install registered it (REGISTER_KERNEL above).
# Lab starts in notebooks/, where jupytext.toml pairs each notebook with its py:percent text form (jupytext is
# installed with the environment). As root it adds --allow-root; LAB_ARGS go to Jupyter, e.g.
# LAB_ARGS='--no-browser --ip 0.0.0.0 --port 8888' on a remote machine.
lab: $(VENV)/.installed $(KERNEL_SPEC)
	$(VENV)/bin/jupyter lab notebooks/ --MappingKernelManager.default_kernel_name=$(KERNEL_NAME)$(if $(filter 0,$(USER_ID)), --allow-root) $(LAB_ARGS)

environment.yml: pyproject.toml $(VENV)/.installed
	$(PY) -m playbook.dev.envfile > environment.yml.tmp && mv environment.yml.tmp environment.yml

clean:
	rm -rf reports .pytest_cache

docs/metrics.md: playbook/metrics/dictionary.py $(VENV)/.installed
	$(PY) -m playbook.metrics.dictionary > docs/metrics.md.tmp && mv docs/metrics.md.tmp docs/metrics.md

# The JSON Schema of summary.json, generated from the section models (tests/test_summary.py fails when it is stale).
docs/summary.schema.json: $(VENV)/.installed
	$(PY) -m playbook.report.summary > docs/summary.schema.json.tmp && mv docs/summary.schema.json.tmp docs/summary.schema.json
