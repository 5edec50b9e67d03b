# gorila_tf: the two commands a fresh machine needs.
#   make run    a local Gorila cluster trains Pong until its agent plays (+18;
#               Ctrl-C stops it); make run CONFIG=pong: the paper's settings
#   make test   run the test suite (make test-fast: the unit tests, a few minutes)
# Both create .venv and install the pinned stack (requirements.lock) on first use.
#
# The pinned stack needs Python 3.11 (setup.py: python_requires). .venv is made
# with PYTHON if you give one (make PYTHON=/path/to/python3.11), else with
# python3.11 on PATH, else with python3 if it is 3.11; otherwise make stops
# before creating anything and says on one line how to get a 3.11.
#   make python   print the Python 3.11 that .venv uses (or would be made with)

VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= pong_fast
ARGS ?=

PYTHON_NEEDED := 3.11
PYTHON_WHY := its pinned TensorFlow 2.15.1 and dm-reverb 0.14.0 wheels are built for CPython 3.11 only
PYTHON_HOW := Get one (pyenv install 3.11, apt install python3.11 python3.11-venv, or uv python install 3.11) and run make again, or name one: make PYTHON=/path/to/python3.11

# Shell snippet: prints the Python 3.11 to make .venv with (an existing .venv's
# own python first), or "!" and the one-line reason there is none.
FIND_PYTHON = \
  version() { "$$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null; }; \
  refuse() { echo "!$$1, but gorila_tf needs Python $(PYTHON_NEEDED): $(PYTHON_WHY). $$2"; exit; }; \
  if [ -x '$(BIN)/python' ]; then \
    v=$$(version '$(BIN)/python'); \
    case "$$v" in $(PYTHON_NEEDED).*) echo '$(BIN)/python'; exit;; esac; \
    refuse "$(BIN)/python is Python $${v:-that does not run}" "Remove $(VENV) (make clean) and run make again"; \
  fi; \
  if [ -n '$(PYTHON)' ]; then \
    v=$$(version '$(PYTHON)'); \
    case "$$v" in $(PYTHON_NEEDED).*) echo '$(PYTHON)'; exit;; esac; \
    refuse "PYTHON=$(PYTHON) is $${v:+Python }$${v:-not a Python that runs}" "$(PYTHON_HOW)"; \
  fi; \
  none="there is no python$(PYTHON_NEEDED) on PATH"; \
  if p=$$(command -v python$(PYTHON_NEEDED)); then \
    v=$$(version "$$p"); \
    case "$$v" in $(PYTHON_NEEDED).*) echo "$$p"; exit;; esac; \
    none="python$(PYTHON_NEEDED) on PATH ($$p) is $${v:+Python }$${v:-not a Python that runs}"; \
  fi; \
  p=$$(command -v python3) || refuse "$$none and no python3 either" "$(PYTHON_HOW)"; \
  v=$$(version "$$p"); \
  case "$$v" in $(PYTHON_NEEDED).*) echo "$$p"; exit;; esac; \
  refuse "python3 is $${v:+Python }$${v:-not a Python that runs} and $$none" "$(PYTHON_HOW)"

# Recipe line: sets VENV_PYTHON, or stops make with the one-line reason.
define find_python
$(eval VENV_PYTHON := $(shell $(FIND_PYTHON)))$(if $(filter !%,$(VENV_PYTHON)),$(error $(patsubst !%,%,$(VENV_PYTHON))))
endef

.PHONY: run test test-fast tensorboard python clean

$(STAMP): requirements.lock setup.py
	$(find_python)
	@test -x $(BIN)/python || '$(VENV_PYTHON)' -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m gorila_tf.launch.local --config=$(CONFIG) $(ARGS)

# Three phases: the unit and in-process cluster tests two at a time, then the
# end-to-end tests two at a time (two clusters at once: what they check is
# behaviour, not speed), then the emulated-host tests one at a time (their
# timing is part of what they check: paused and cut hosts, CPU quotas). A test
# file goes to one worker whole (--dist loadfile), so a module-scoped
# fixture (one real run, several checks) runs once. (--dist loadgroup would
# split files finer, but pytest 9.2 ignores the node ids xdist 3.8 renames
# for it: its groups were split across workers, each running the fixture.)
# Exit status 5 is "ARGS selected no test in this phase".
PARALLEL := -n 2 --dist loadfile
test: $(STAMP)
	$(BIN)/python -m pytest -q tests $(PARALLEL) -m 'unit or cluster' $(ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -q tests $(PARALLEL) -m e2e $(ARGS) || [ $$? -eq 5 ]
	$(BIN)/python -m pytest -q tests -m hosts $(ARGS) || [ $$? -eq 5 ]

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests $(PARALLEL) -m unit $(ARGS)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs

python:
	$(find_python)
	@echo '$(VENV_PYTHON)'

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
