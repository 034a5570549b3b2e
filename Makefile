# finsentry: two commands on a fresh machine.
#   make demo   creates .venv, installs finsentry (runtime only, no torch), runs the end-to-end demo
#   make test   installs the [train,dev] extras too and runs the whole suite (starts its own Kafka broker)
# VENV can point elsewhere (CI reuses one across clones: VENV=~/.cache/finsentry/venv).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := build/stamps
PYTEST_ARGS ?=

.PHONY: demo test install install-dev clean

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
install-dev: $(STAMP)/dev

demo: $(STAMP)/runtime
	$(VENV)/bin/finsentry demo

test: $(STAMP)/dev
	bash deploy/kafka/broker.sh fetch
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build var .pytest_cache
