# Two commands on a fresh machine:
#   make run    install into .venv (created if missing) and run the daemon on ./example/photos
#   make test   install the same way and run every test (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test quick lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

example/watcherd.toml:
	mkdir -p example/photos
	sed -e 's|^paths = .*|paths = ["photos"]|' config.example.toml > example/watcherd.toml

run: install example/watcherd.toml
	@echo "watching $(CURDIR)/example/photos; database $(CURDIR)/example/watcherd.db"
	$(VENV)/bin/watcherd -c example/watcherd.toml run

# ruff, mypy (configured in pyproject.toml), then the package's shape (tools/shape.py: sizes,
# import circles, layering; it fails on any finding).
lint: install
	$(VENV)/bin/ruff check watcherd tests benchmarks tools
	$(VENV)/bin/mypy
	$(PY) tools/shape.py

# Everyday tests: tests/unit (in-process), tests/process, tests/web and tests/integration, every
# folder that tests/conftest.py does not mark slow (4 minutes on a 2-core Zen 4).
quick: install
	$(VENV)/bin/pytest -m "not slow" -q

# Everything: the slow folders too (tests/daemon, tests/reliability, tests/systemd: whole
# pipelines, faults, load, systemd). 22 minutes on a 2-core Zen 4.
test: install lint
	$(VENV)/bin/pytest -q

bench: install
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/cli_start.py

clean:
	rm -rf $(VENV) example .pytest_cache
