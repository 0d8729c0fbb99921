# Two entry points, each setting up everything it needs in .venv first:
#   make test   -- install and run the test suite (what CI runs)
#   make demo   -- install and run the main job: a search on the digits example
# The CPU build of torch is installed first, pinned, so that no CUDA build is pulled in.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SOURCES := pyproject.toml $(shell find sparsemod_dsl grammar stdlib -type f -not -name '*.pyc')

.PHONY: test demo install browser clean

install: $(VENV)/.installed

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet ".[test,deploy,ray]"
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall .
	touch $@

# The report's browser tests need Debian's chromium: installed when this runs as root with
# apt-get and the package can be had (within 4 minutes); otherwise those tests skip, saying so.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	    && timeout 240 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends chromium' >/dev/null 2>&1; } \
	    || echo "chromium could not be installed: the report's browser tests will skip"

test: install browser
	$(BIN)/pytest -q -n 2 -p no:cacheprovider

demo: install
	$(BIN)/sparsemodc search examples/digits/experiment.toml
	$(BIN)/sparsemodc report results/digits

clean:
	rm -rf $(VENV) build *.egg-info
