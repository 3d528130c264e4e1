# One-command set-up: every target installs what it needs on a fresh machine.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the test suite drives for real (redis, browser, reverse proxy, load tool).
APT_PKGS := redis-server chromium chromium-driver nginx-light wrk curl
HOST    ?= 127.0.0.1
PORT    ?= 8000

.PHONY: run test lint typecheck coverage bench system-deps clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps:
	@need=0; for b in redis-server chromium chromedriver wrk curl; do command -v $$b >/dev/null 2>&1 || need=1; done; \
	 [ -x /usr/sbin/nginx ] || need=1; \
	 if [ $$need = 1 ]; then \
	   echo "installing Debian packages: $(APT_PKGS)"; \
	   $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	 fi

run: $(STAMP)
	$(PY) -m examples.showcase --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check microweb middleware tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) system-deps lint typecheck
	$(VENV)/bin/pytest -q

# Branch coverage of the in-process tests (subprocess servers are not traced).
coverage: $(STAMP) system-deps
	$(VENV)/bin/coverage run --branch --source=microweb,middleware -m pytest -q
	$(VENV)/bin/coverage report --skip-covered --sort=cover

bench: $(STAMP) system-deps
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
