# dockyard: two commands on a fresh Debian machine, as root.
#   make demo   installs what it needs, starts dockyardd, imports busybox, runs a container
#   make test   installs what it needs and runs the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
APT_PACKAGES := busybox-static iproute2 util-linux procps nftables
STAMP := $(VENV)/.installed

.PHONY: demo test deps sysdeps venv clean

sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

deps: sysdeps venv

demo: deps
	@bash contrib/demo.sh

test: deps
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
