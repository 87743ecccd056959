# Two commands for a newcomer: `make demo` runs the product on its embedded default (demo content,
# then the web app on http://127.0.0.1:8000/ until Ctrl-C),
# `make test` runs every test. Each bootstraps .venv on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test browser clean

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

browser:
	@sh scripts/ensure-chromium
	@$(PYTHON) scripts/fetch-axe

clean:
	rm -rf $(VENV) var
