# gorila_tf: the two commands a fresh machine needs.
#   make run    start a local Gorila cluster training Pong (Ctrl-C stops it)
#   make test   run the test suite
# Both create .venv and install the pinned stack (requirements.lock) on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= pong
ARGS ?=

.PHONY: run test tensorboard clean

$(STAMP): requirements.lock setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m gorila_tf.launch.local --config=$(CONFIG) $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests $(ARGS)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
