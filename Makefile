# finsentry: two commands on a fresh machine.
#   make demo   creates .venv, installs finsentry (runtime only, no torch), runs the end-to-end demo
#   make test   installs the [train,dev] extras too and runs the whole suite (starts its own Kafka broker);
#               as root it also installs Debian's Chromium when missing (the headless report test)
# VENV can point elsewhere (CI reuses one across clones: VENV=~/.cache/finsentry/venv).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# install stamps live in the virtualenv: a checkout used with two VENVs installs into each
STAMP := $(VENV)/.finsentry-stamps
PYTEST_ARGS ?=

.PHONY: demo test install install-dev browser clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP)/runtime: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[train,dev]'
	@mkdir -p $(STAMP) && touch $@ $(STAMP)/runtime

install: $(STAMP)/runtime
install-dev: $(STAMP)/dev browser

# The system Chromium for tests/e2e/test_report_browser.py (Playwright drives it; it never downloads
# its own browsers). Installed with apt when missing and we are root; otherwise that test skips and says why.
browser:
	@if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium (apt) for the headless report test"; \
	  apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "note: no chromium and not root: the headless report test will skip (apt-get install -y chromium)"; fi

demo: $(STAMP)/runtime
	$(VENV)/bin/finsentry demo

test: $(STAMP)/dev browser
	bash deploy/kafka/broker.sh fetch
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build var .pytest_cache
