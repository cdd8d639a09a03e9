# Two commands for a reader: `make book` builds the HTML, `make test` runs the tests.
# `make venv` creates .venv and installs the pinned environment when it is missing or out of date,
# and does nothing when it is current (the stamp file records what was installed).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= publish
export HF_HUB_OFFLINE := 1

.PHONY: venv test test-fast book notebooks clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -c requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

# `make test` runs in one process: on 2 cores, spreading it over workers (pytest-xdist) slowed the smoke
# book build, the longest test, from about 190 s to 400 s and the whole run from 7.9 to 8.9 min.
# `make test-fast` (no book builds) gains from one worker per core; tests that share the book's executed
# notebooks are marked xdist_group("book"), so `pytest -n auto --dist loadgroup` keeps them on one worker.
test: venv
	$(PY) -m pytest -q --durations=15 tests

test-fast: venv
	$(PY) -m pytest -q --durations=15 -n auto --dist loadgroup -m "not slow" tests

book: venv
	$(PY) -m storage_scaling.book --profile $(PROFILE)

clean:
	rm -rf _build book/executed
