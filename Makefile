# TerraFusion for QGIS. `make demo` and `make test` each work on a bare Debian 12 machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
AGENT := $(VENV)/bin/terrafusion-agent
# Debian's Python: PyQGIS, PyQt5 and GDAL live in its site-packages, and it can load
# SQLite extensions (SpatiaLite); a pyenv or conda python usually cannot.
SYSTEM_PYTHON := /usr/bin/python3
# PostGIS for the PostgreSQL that apt offers (Debian 12: 15, Debian 13: 17): the major
# version the `postgresql` package depends on; without apt's lists (before the first
# apt-get update), the PostgreSQL already installed; else Debian 12's.
PG_MAJOR := $(shell { apt-cache depends postgresql 2>/dev/null | \
	sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$$/\1/p'; \
	ls /usr/lib/postgresql 2>/dev/null | sort -n -r; echo 15; } | head -n 1)
POSTGIS_PACKAGE := postgresql-$(PG_MAJOR)-postgis-3
APT_PACKAGES := python3-qgis qgis qgis-providers python3-gdal gdal-bin \
	libsqlite3-mod-spatialite $(POSTGIS_PACKAGE) xvfb pyqt5-dev-tools \
	qttools5-dev-tools qttranslations5-l10n prometheus python3-venv python3-pip pgbouncer
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/runtime-$(shell id -u)

.PHONY: setup apt demo test soak mutants lint package deploy bench loadtest clean

setup: apt $(VENV)/.installed

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml | apt
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(AGENT) init-central --demo-parcels 10000
	$(AGENT) sync
	$(AGENT) run

test: setup
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) -m pytest

# The randomized sync model (tests/sync_model.py) for MINUTES minutes, episode after
# episode with fresh seeds (SEED= fixes the first); prints the totals and exits non-zero on
# any loss or other discrepancy. The test suite runs one short episode of it.
MINUTES ?= 10
soak: setup
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) tests/sync_model.py --minutes $(MINUTES) $(if $(SEED),--seed $(SEED))

# Each mutant breaks one promise of the README in a temporary copy of the tree (never this
# one); the tests named for it must fail. A few minutes; not part of make test.
mutants: setup
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) scripts/mutants.py

lint: setup
	$(VENV)/bin/ruff check agent terrafusion_plugin tests scripts bench
	$(PY) -m mypy

package: setup
	$(PY) scripts/package_plugin.py

# SERVICE=1 also installs the agent as a systemd user service (started at login); CONFIG=
# names its configuration file. Without systemd it prints the steps; deploy never fails on it.
deploy: setup
	$(PY) scripts/package_plugin.py --deploy
	@if [ "$(SERVICE)" = 1 ]; then \
		$(AGENT) $(if $(CONFIG),--config "$(CONFIG)") install-service || \
		echo "The service was not installed (see above); the plugin is deployed anyway."; \
	else \
		echo "To start the agent at login as a service: make deploy SERVICE=1 [CONFIG=agent.toml]"; \
		echo "  (or: $(AGENT) --config path/to/agent.toml install-service)"; \
	fi

# Byte-compiled first, as an installed package is: the CLI timings measure the export,
# not Python compiling our modules (PYTHONDONTWRITEBYTECODE would make it do so each run).
bench: setup
	$(PY) -m compileall -q agent terrafusion_plugin
	$(PY) bench/run.py

# 200 real agent processes syncing every 5 s with one throwaway PostGIS for 3 minutes
# while central and local edits go on; writes build/loadtest.json and a table, exits
# non-zero if any edit is lost. About 15 minutes and all of the machine; not part of make
# test. ARGS= passes options, e.g. ARGS="--agents 20 --minutes 1" (see --help).
loadtest: setup
	@mkdir -p $(XDG_RUNTIME_DIR) && chmod 700 $(XDG_RUNTIME_DIR)
	$(PY) -m compileall -q agent
	$(PY) scripts/loadtest.py $(ARGS)

clean:
	rm -rf build dist
