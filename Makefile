# Two commands for a newcomer: `make demo` runs the product on its embedded default (demo content,
# then the web app on http://127.0.0.1:8000/ until Ctrl-C),
# `make test` runs every test. Each bootstraps .venv on a fresh clone. `make bench` runs the benchmark
# suite (bench/run_all.py: small and large sizes, one table; PostgreSQL rows when
# NEWSLETTER_BENCH_POSTGRES_URL is set; BENCH_ARGS="--only import_contacts --size small" runs part).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test browser bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/newsletter demo
	$(BIN)/newsletter serve

# Browser tests drive Debian's chromium; scripts/ensure-chromium installs it when it can. The
# accessibility checks inject axe-core, fetched from the npm registry (sha512-verified) into .cache/.
test: $(STAMP) browser
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

browser:
	@sh scripts/ensure-chromium
	@$(PYTHON) scripts/fetch-axe

clean:
	rm -rf $(VENV) var
