# The two quick-start commands: `make lab` (set up + start JupyterLab) and `make test` (set up + all checks).
VENV ?= .venv
PY := $(VENV)/bin/python
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888

.PHONY: setup lab test lint e2e bench-smoke

setup:
	@scripts/setup.sh

# JupyterLab refuses to run as root unless told; root is common in containers and on these machines.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=$(LAB_IP) --port=$(LAB_PORT) --no-browser $(ALLOW_ROOT)

lint: setup
	$(VENV)/bin/ruff check .
	$(PY) -m compileall -q sdxl_nb tests

test: lint
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(PY) -m pytest

# The benchmark must never rot: CI runs it quickly and keeps its JSON (no timing is asserted). Like the tests, it
# builds its tiny models in a temporary home and cache, never in ~/.cache.
bench-smoke: setup
	mkdir -p test-artifacts
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && HOME=$$tmp XDG_CACHE_HOME=$$tmp/.cache \
	  SDXL_NB_CACHE=$$tmp/sdxl_nb HF_HUB_CACHE=$$tmp/hub HF_HUB_OFFLINE=1 SDXL_NB_OUTPUT=$$tmp/out \
	  $(VENV)/bin/sdxl-nb bench --quick --json test-artifacts/bench-quick.json
	$(PY) -c "import json; r = json.load(open('test-artifacts/bench-quick.json')); assert r['sustained_ratio'] > 0 and r['overhead_ratio'] > 0"

# The real-browser suite: JupyterLab + headless Chromium open notebook 01 once, then one test per tab uses the lab
# (screenshots in test-artifacts/, the README's in docs/images/). Its set-up installs chromium, chromedriver, selenium.
e2e: setup
	@scripts/setup-e2e.sh
	PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(PY) -m pytest tests/e2e
