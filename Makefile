# Two commands matter: `make run` and `make test`. Everything bootstraps itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-installed
ARCH   ?= x86_64
RUNTIME ?= python3.12

.PHONY: setup run test lint format bench layer contract clean

setup: $(STAMP)

# Re-installs only when a requirements file changes; safe to run any number of times.
# Then this checkout itself (editable, no deps): the `pipeline` command in .venv/bin.
$(STAMP): requirements.txt requirements-lambda.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

run: setup
	$(BIN)/pipeline run

test: setup
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m pipeline.bench

# The Lambda dependency layer for one architecture: `make layer ARCH=arm64` for prod.
layer: setup
	$(BIN)/python -m infra.layer --arch $(ARCH) --runtime $(RUNTIME)

contract: setup
	@$(BIN)/python -m pipeline contract

clean:
	rm -rf lake build .pytest_cache .hypothesis
