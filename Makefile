# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make run   install, start the private PostGIS, migrate, load boundaries and demo, serve the map
#   make test  the same set-up, then the whole test suite
# Both are idempotent. GEO_SERVICE_DATABASE_URL points everything at an existing PostGIS instead.

VENV    := .venv
PY      := $(VENV)/bin/python
GS      := $(VENV)/bin/geo-service
PYTEST_ARGS ?=

.PHONY: run test soak setup install vendor system-deps system-deps-test qgis-root lint clean-db

run: system-deps setup
	$(GS) serve

test: system-deps-test setup qgis-root
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# On demand: the service under load for SOAK_SECONDS (600) then fuzzed at length; figures in docs/robustness.md.
SOAK_SECONDS ?= 600
soak: install
	$(GS) db up
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) tests/robustness/soak.py

setup: install
	$(GS) db up
	$(GS) db migrate
	$(GS) user ensure-admin
	$(GS) load boundaries --if-empty
	$(GS) demo --if-empty
	$(GS) snapshot --backfill

install: $(VENV)/.installed vendor

$(VENV)/.installed: pyproject.toml
	@python3 -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv manque : installation avec apt-get"; \
	  apt-get install -y -q python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# Leaflet and its plugins come from npm, copied under web/static/vendor/ with their licences.
vendor: $(VENV)/.installed
	$(PY) -m geo_service.vendor

# What the browser tests and the vendoring need from Debian (installed only when missing, as root).
system-deps:
	@bash .ci/system-deps run

system-deps-test:
	@bash .ci/system-deps test

# QGIS 3.40 in a Debian 13 root (tests/.qgis-root, ≈390 MB downloaded, 1.9 GB, ≈4 min the first time; nothing
# afterwards) for tests/test_qgis_client.py: Debian 12's QGIS 3.22 cannot edit through OGC API – Features.
qgis-root:
	@bash .ci/qgis-root

lint: install
	$(VENV)/bin/ruff check geo_service tests bench
	$(VENV)/bin/lint-imports --no-cache

clean-db:
	-$(GS) db down
	rm -rf .pgdata
