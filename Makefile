# dockyard: two commands on a fresh Debian machine, as root.
#   make demo   installs what it needs, starts dockyardd, imports busybox, runs a container
#   make test   installs what it needs and runs the whole test suite
SHELL := /bin/bash
# Debian's own interpreter (3.11.2 on a fresh Debian 12), never whatever python3 is first on PATH
PYTHON ?= /usr/bin/python3
VENV := .venv
# what running dockyard needs (make demo) ...
RUN_PACKAGES := busybox-static iproute2 util-linux procps btrfs-progs python3-btrfsutil fuse-overlayfs fuse3 e2fsprogs python3-seccomp nftables tini python3-venv
# ... and the peers and clients the tests drive (make test)
TEST_PACKAGES := docker-registry skopeo umoci docker.io docker-compose
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint deps test-deps sysdeps test-sysdeps venv debian-modules clean

sysdeps: APT_PACKAGES = $(RUN_PACKAGES)
test-sysdeps: APT_PACKAGES = $(RUN_PACKAGES) $(TEST_PACKAGES)
sysdeps test-sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  [ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(VENV)/bin/pip install -q -e .
	touch $@

# the test-only Python packages (pytest, docker-py), on top of the runtime ones
$(TEST_STAMP): $(STAMP)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Two bindings come from Debian, not PyPI: btrfsutil (the PyPI source does not import against
# Debian 12's library) and libseccomp's. Only their .so files are made importable in the venv,
# through a directory of links named by a .pth — never the whole system site-packages.
DEBIAN_MODULES := btrfsutil seccomp
debian-modules: $(STAMP)
	@site=$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	dir=$$(cd $(VENV) && pwd)/debian-modules; mkdir -p $$dir; \
	for m in $(DEBIAN_MODULES); do \
	  so=$$(ls /usr/lib/python3/dist-packages/$$m.cpython-*.so 2>/dev/null | head -n1); \
	  [ -n "$$so" ] && ln -sfn "$$so" "$$dir/"; \
	done; \
	echo "$$dir" > "$$site/dockyard-debian-modules.pth"

venv: $(STAMP) debian-modules

deps: sysdeps
	@$(MAKE) --no-print-directory venv

test-deps: test-sysdeps
	@$(MAKE) --no-print-directory venv $(TEST_STAMP)

demo: deps
	@bash contrib/demo.sh

# Habits, fast, before the tests: ruff's lint over the tree, its formatter over the driver toolkit
# (hookspecs/host, see pyproject.toml), mypy over core, hookspecs, plugins and cli. mypy sees
# the four folders as the dockyard.* packages they install as through a directory of links.
MYPY_PATH := $(VENV)/mypy-path
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check core hookspecs plugins cli
	$(VENV)/bin/ruff format --check hookspecs/host
	@mkdir -p $(MYPY_PATH)/dockyard && for p in core hookspecs plugins cli; do \
	  ln -sfn "$(CURDIR)/$$p" "$(MYPY_PATH)/dockyard/$$p"; done
	MYPYPATH=$(MYPY_PATH) $(VENV)/bin/mypy -p dockyard.core -p dockyard.hookspecs -p dockyard.plugins -p dockyard.cli

test: test-deps
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
