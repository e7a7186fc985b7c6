# Every target sets up what it needs: a virtual environment in .venv with engramdb and its
# extras installed (uv, bootstrapped from pip, does the installing).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA_DIR ?= .engramdb
HOST ?= 127.0.0.1
PORT ?= 8765

.PHONY: install serve test lint bench clean chromium

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"

$(STAMP): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
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

test: lint chromium
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
