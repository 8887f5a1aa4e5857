# Two commands do all the set-up from a fresh clone:
#   make demo   - virtualenv + install + index the bundled sample + a photo and a text search
#   make test   - virtualenv + install + static checks (make check) + the test suite
# On a machine with internet and no local torch wheel, add
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu
# so pip takes torch's CPU build instead of several GB of CUDA packages.

PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX ?=
BIN := $(VENV)/bin

.PHONY: demo test install bench check stage docs clean locales locales-extract locales-update

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/visearch demo

test: install check
	$(BIN)/python -m pytest -q

# mypy reads the packages by their import names: build/stage/visearch/{core,bots,indexer} link to the folders
# (setuptools maps core/ -> visearch.core). Relative links, remade on every run, so the step is idempotent.
STAGE := build/stage/visearch

stage:
	mkdir -p $(STAGE)
	for package in core bots indexer; do ln -sfn ../../../$$package $(STAGE)/$$package; done

# Static checks, one command per line (import contracts: [tool.importlinter]; types: [tool.mypy], strict on core;
# lint and format: [tool.ruff]).
check: install stage
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy -p visearch.core -p visearch.bots -p visearch.indexer
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory docs

# The documentation site (mkdocs.yml, Material theme): strict, so a broken link or a page outside the nav fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

# Message catalogs (Babel, gettext): extract every N_/_()/plural() message of bots/ into the template,
# merge it into each locale's .po (new messages arrive empty, changed ones fuzzy), compile the .mo files
# that ship in the wheel. `make locales` runs all three; tests/bots/test_locales.py fails when a shipped
# locale lacks a message, has a broken placeholder or a .mo older than its .po.
LOCALES := bots/locales
POT := $(LOCALES)/visearch.pot

locales-extract: install
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ -k _ -k gettext -k plural:1,2 -k plural_form:1,2 -k NP_:1,2 -k _fill:2 --no-location --sort-output --project=visearch --version=1 --copyright-holder="visearch team" -o $(POT) bots

locales-update: locales-extract
	$(BIN)/pybabel -q update -D visearch -i $(POT) -d $(LOCALES) --no-fuzzy-matching --ignore-obsolete

locales: locales-update
	$(BIN)/pybabel compile -D visearch -d $(LOCALES) --statistics

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) visearch-data .pytest_cache
