# Propusk: `make run` to try it, `make test` to check it. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export INSTANCE_PATH ?= $(CURDIR)/instance

.PHONY: setup dev-setup run test test-sqlite test-postgresql lint bench i18n-extract i18n-update system-packages

## setup: virtualenv with the pinned requirements, htmx from npm, compiled translations
setup: $(VENV)/.deps static/vendor/htmx.min.js translations/en/LC_MESSAGES/messages.mo

$(VENV)/.deps: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt $(VENV)/.deps
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# htmx is third-party code: it comes from the npm registry at the version package-lock.json pins.
static/vendor/htmx.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

translations/en/LC_MESSAGES/messages.mo: translations/en/LC_MESSAGES/messages.po $(VENV)/.deps
	$(BIN)/pybabel compile --statistics -d translations 2>&1 | tail -n 1

## dev-setup: test tools, Debian's Chromium for the browser tests, PostgreSQL for the database tests
dev-setup: setup $(VENV)/.dev-deps system-packages

# The tests start their own throw-away PostgreSQL server (initdb into a temp folder).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-dejavu-core"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

## run: database, demo data (logins printed), then the app on http://127.0.0.1:$${PORT:-5000}
run: setup
	$(BIN)/flask --app app migrate
	@echo "Demo logins (ROLE, LOGIN, PASSWORD):"
	@$(BIN)/flask --app app seed-demo
	@echo "Demo gate «Въезд»: GATE-CTL simulator on 127.0.0.1:5020, control page http://127.0.0.1:5021"
	@$(BIN)/python -m gatebridge.simulator --port 5020 --control-port 5021 > /dev/null & \
	sim=$$!; trap 'kill $$sim 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python app.py

## test: the whole suite (unit, web, real servers, Modbus, Chromium) on SQLite, then on PostgreSQL
test: test-sqlite test-postgresql

# Each pass runs in two phases: the tests spread over $(TEST_WORKERS) processes (pytest-xdist;
# each process has its own databases, servers and browser), then the timing tests (marked
# `timing`: "within a second", "under 50 ms") alone, with the cores to themselves.
TEST_WORKERS ?= 2
PYTEST_SPREAD = $(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not timing"
PYTEST_ALONE = $(BIN)/python -m pytest -m timing

test-sqlite: dev-setup
	PROPUSK_TEST_DB=sqlite $(PYTEST_SPREAD)
	PROPUSK_TEST_DB=sqlite $(PYTEST_ALONE)

# The suite starts a throw-away PostgreSQL cluster (tests/pg.py: initdb into a temp folder,
# loopback and a free port) and removes it at the end.
test-postgresql: dev-setup
	PROPUSK_TEST_DB=postgresql $(PYTEST_SPREAD)
	PROPUSK_TEST_DB=postgresql $(PYTEST_ALONE)

lint: dev-setup
	$(BIN)/ruff check .

bench: dev-setup
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

## i18n: extract messages and merge them into the English catalog
i18n-extract: setup
	$(BIN)/pybabel extract --no-wrap --no-location --sort-output -F babel.cfg -k _l -o translations/messages.pot .

i18n-update: i18n-extract
	$(BIN)/pybabel update --no-wrap --no-fuzzy-matching -i translations/messages.pot -d translations
