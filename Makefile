# turnio-ingest — every target works on a fresh Debian 12 machine (root, no systemd).
# `make services` starts PostgreSQL and RabbitMQ unless DATABASE_URL and AMQP_URL are set;
# the targets that need them read the URLs it prints.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SERVICE_ENV = eval "$$(bash scripts/services.sh)"

.PHONY: install services migrate test test-fast demo bench chaos lint format lock clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

services:
	@bash scripts/services.sh

migrate: install
	@$(SERVICE_ENV); $(PY) -m shared.migrate

# pytest exits 5 when a selection (PYTEST_ARGS) matches no test: say so, don't fail.
PYTEST = $(PY) -m pytest $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests matched: nothing ran"; exit 0; fi; exit $$rc

test: install
	@$(SERVICE_ENV); $(call PYTEST,$(PYTEST_ARGS))

test-fast: install
	@$(SERVICE_ENV); $(call PYTEST,-m 'not slow' $(PYTEST_ARGS))

demo: install
	@$(SERVICE_ENV); $(PY) -m demo $(DEMO_ARGS)

bench: install
	@$(SERVICE_ENV); $(PY) -m benchmarks

# Private PostgreSQL and RabbitMQ of its own (it kills them): no `make services` needed,
# only their packages. CHAOS_ARGS="--seed 7 --duration 600" for a long run.
chaos: install
	@bash scripts/services.sh >/dev/null; $(PY) -m chaos $(CHAOS_ARGS)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lock: install
	$(VENV)/bin/pip-compile -q --extra dev --strip-extras --no-emit-index-url -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
