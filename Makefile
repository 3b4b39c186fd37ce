# sftdesk: `make run` starts the service with a demo project; `make test` runs every test.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
export SFTDESK_DATA_DIR ?= $(CURDIR)/data

.PHONY: install run test test-postgres browser catalogs lint-catalogs clean

install: $(VENV)/.installed

# torch is pinned and installed first: an unpinned request pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train,test]'
	touch $@

run: install
	$(VENV)/bin/sftdesk run

# Browser tests need Chromium at /usr/bin/chromium (Debian package `chromium`).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && apt-get install -y -q chromium; fi

test: install browser
	$(PY) -m pytest -n 2 --dist loadgroup

# tests/unit and tests/training use no database, so the PostgreSQL run leaves them out.
test-postgres: install
	SFTDESK_TEST_DATABASE=postgres $(PY) -m pytest -n 2 --dist loadgroup -m "not browser" --ignore=tests/unit --ignore=tests/training

catalogs: install
	$(PY) -m app.i18n.extract

clean:
	rm -rf $(VENV) .pytest_cache
