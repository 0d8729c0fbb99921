# Two entry points, each setting up everything it needs in .venv first:
#   make test   -- install and run the test suite (what CI runs)
#   make demo   -- install and run the main job: a search on the digits example
# The CPU build of torch is installed first, pinned, so that no CUDA build is pulled in.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SOURCES := pyproject.toml $(shell find sparsemod_dsl grammar stdlib -type f -not -name '*.pyc')

.PHONY: test demo install clean

install: $(VENV)/.installed

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet ".[test,deploy]"
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .
	touch $@

test: install
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

demo: install
	$(BIN)/sparsemodc search examples/digits/experiment.toml
	$(BIN)/sparsemodc report results/digits

clean:
	rm -rf $(VENV) build *.egg-info
