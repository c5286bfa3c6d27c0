# hpogrid: the two commands a fresh machine needs.
#   make demo   install, then run an HPO campaign end to end (embedded) and print the best point
#   make test   install with the test extras, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= all
export HPOGRID_DEMO_HOME ?= $(CURDIR)/.hpogrid-demo

.PHONY: demo test install venv clean bench idds-local

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

venv: $(BIN)/uv

install: venv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[$(EXTRAS)]'

test: venv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[$(EXTRAS),test]'
	bash tests/setup_system.sh
	$(BIN)/python -m pytest -q --durations=40 $(PYTEST_ARGS)

demo: install
	bash examples/demo.sh

# a real iDDS 2.6.21 on 127.0.0.1:18080 (docs/IDDS-LOCAL.md); stop: $(BIN)/hpogrid-idds-local stop --workdir .idds-local
idds-local: install
	$(BIN)/hpogrid-idds-local start --workdir $(CURDIR)/.idds-local --port 18080

bench: install
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .hpogrid-demo build *.egg-info
