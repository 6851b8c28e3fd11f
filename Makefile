# Two commands set up a fresh machine: `make demo` and `make test`. Each installs what it needs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DG     := $(VENV)/bin/distillguard
DEMO   ?= demo-out
EXTRAS := detect,gateway,console,intel,cloud,spark,dev

.PHONY: install test lint demo clean console gateway-demo nginx litellm

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .

# NGINX (Debian package) for the check-service test; installed when we may, else that test skips and says why.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  { test "$$(id -u)" = 0 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light; } || \
	  echo "nginx not installed: tests/gateway/test_check_nginx.py will skip (apt-get install nginx-light)"

test: install lint nginx
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15

demo: install
	rm -rf $(DEMO)
	$(DG) ingest tests/data --store $(DEMO)/store || test $$? -eq 3
	$(DG) stats --store $(DEMO)/store
	$(DG) simulate --config default --scale 0.01 --out $(DEMO)/world
	$(DG) baseline --store $(DEMO)/world --out $(DEMO)/baseline
	$(DG) scan --store $(DEMO)/world --out $(DEMO)/scan
	$(DG) bench --world $(DEMO)/world --results $(DEMO)/scan --baseline $(DEMO)/baseline
	@echo "report: $(abspath $(DEMO))/scan/report.html"
	$(DG) console --store $(DEMO)/world --build-aggregates
	@echo "serve the investigation console on the demo world: $(DG) console --store $(DEMO)/world   (or: make console)"

# Serves the console on the demo world until stopped (Ctrl-C); prints a one-time login token.
console: install
	test -f $(DEMO)/world/store.json || $(MAKE) demo
	$(DG) console --store $(DEMO)/world $(if $(CONSOLE_CONFIG),--config $(CONSOLE_CONFIG),)

# The inline gateway: bundled mock upstream + gateway on the demo store, driven by the official SDKs.
gateway-demo: install
	test -f $(DEMO)/store/store.json || $(DG) ingest tests/data --store $(DEMO)/store || test $$? -eq 3
	$(DG) gateway-demo --store $(DEMO)/store

# LiteLLM's proxy in its own environment (it pins older rich/websockets than ours); the LiteLLM guardrail
# test (tests/integrations) uses .venv-litellm/bin/litellm and skips, saying so, when it is absent.
litellm: .venv-litellm/.installed
.venv-litellm/.installed: pyproject.toml
	test -x .venv-litellm/bin/python || $(PYTHON) -m venv .venv-litellm
	.venv-litellm/bin/python -m pip install -q -e '.[litellm]' --config-settings editable_mode=compat
	touch $@

clean:
	rm -rf $(VENV) .venv-litellm $(DEMO) .pytest_cache
