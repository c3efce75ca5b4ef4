# dockyard: two commands on a fresh Debian machine, as root.
#   make demo   installs what it needs, starts dockyardd, imports busybox, runs a container
#   make test   installs what it needs and runs the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
APT_PACKAGES := busybox-static iproute2 util-linux procps python3-seccomp tini
# Debian's libseccomp binding (not on PyPI in a form that builds here): only that one module is
# made importable in the venv, through a directory holding a link to it and a .pth naming it.
SECCOMP_SO = $(firstword $(wildcard /usr/lib/python3/dist-packages/seccomp.cpython-*.so))
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

venv: sysdeps $(STAMP)
	@if [ -n "$(SECCOMP_SO)" ]; then \
	  site=$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  mkdir -p $(VENV)/debian-modules && ln -sf $(SECCOMP_SO) $(VENV)/debian-modules/ && \
	  echo "$$(cd $(VENV)/debian-modules && pwd)" > $$site/dockyard-debian-seccomp.pth; fi

deps: sysdeps venv

demo: deps
	@bash contrib/demo.sh

test: deps
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
