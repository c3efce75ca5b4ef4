# dockyard on a fresh Debian machine, as root.
#   make demo     installs what running dockyard needs, starts dockyardd, imports busybox, runs a container
#   make install  installs dockyard for good: /opt/dockyard, dockyard and dockyardd in /usr/local/bin,
#                 the systemd units (socket-activated), the `dockyard` group, shell completion
#   make test     also installs the peers and clients the tests drive, and runs the whole test suite
SHELL := /bin/bash
# Debian's own interpreter (3.11.2 on a fresh Debian 12), never whatever python3 is first on PATH
PYTHON ?= /usr/bin/python3
VENV := .venv
# what running dockyard needs (make demo, make install) ...
RUN_PACKAGES := busybox-static iproute2 util-linux procps btrfs-progs python3-btrfsutil fuse-overlayfs fuse3 e2fsprogs python3-seccomp nftables tini python3-venv
# ... and the peers and clients the tests drive (make test): Docker's CLI, daemon and compose, a
# registry and image tools, other runtimes, a browser for the dashboard, systemd's tools for the
# service tests
TEST_PACKAGES := docker-registry skopeo umoci docker.io docker-compose lxc python3-lxc runc crun chromium chromium-driver systemd xfsprogs
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# make install: where things go (override on the command line)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
INSTALL_VENV ?= /opt/dockyard
UNITDIR ?= /etc/systemd/system
COMPLETIONDIR ?= $(PREFIX)/share
SOCKET_GROUP ?= dockyard

.PHONY: demo test lint format contrib-plugins deps test-deps sysdeps test-sysdeps venv debian-modules clean install uninstall

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

# the example third-party drivers (contrib/plugins/*), each pip-installed from its own package as
# a user would install one from PyPI: the tests then find them through their entry points
CONTRIB_PLUGINS := $(sort $(dir $(wildcard contrib/plugins/*/pyproject.toml)))
CONTRIB_STAMP := $(VENV)/.installed-contrib
$(CONTRIB_STAMP): $(STAMP) $(wildcard contrib/plugins/*/pyproject.toml contrib/plugins/*/*.py)
	$(VENV)/bin/pip install -q $(addprefix ./,$(CONTRIB_PLUGINS))
	touch $@
contrib-plugins: $(CONTRIB_STAMP)

# Three bindings come from Debian, not PyPI: btrfsutil (the PyPI source does not import against
# Debian 12's library), libseccomp's and liblxc's (python3-lxc: a package directory `lxc/` and its
# `_lxc` extension). Only those are made importable in the venv, through a directory of links
# named by a .pth — never the whole system site-packages.
DEBIAN_MODULES := btrfsutil seccomp _lxc
DEBIAN_PACKAGES := lxc
# $(call link-debian-modules,VENV-DIR)
define link-debian-modules
	@site=$$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	dir=$$(cd $(1) && pwd)/debian-modules; mkdir -p $$dir; \
	for m in $(DEBIAN_MODULES); do \
	  so=$$(ls /usr/lib/python3/dist-packages/$$m.cpython-*.so 2>/dev/null | head -n1); \
	  [ -n "$$so" ] && ln -sfn "$$so" "$$dir/"; \
	done; \
	for p in $(DEBIAN_PACKAGES); do \
	  [ -f /usr/lib/python3/dist-packages/$$p/__init__.py ] && ln -sfn /usr/lib/python3/dist-packages/$$p "$$dir/"; \
	done; \
	echo "$$dir" > "$$site/dockyard-debian-modules.pth"
endef
debian-modules: $(STAMP)
	$(call link-debian-modules,$(VENV))

# pip never compiles an editable install, and where PYTHONDONTWRITEBYTECODE is set nothing else
# does: every dockyardd start (~0.7 s) and every dockyard command would compile the tree again.
# Compiled here (only what changed since); a source edited later is compiled in memory until then.
venv: $(STAMP) debian-modules
	$(VENV)/bin/python -m compileall -q core hookspecs plugins cli >/dev/null

deps: sysdeps
	@$(MAKE) --no-print-directory venv

test-deps: test-sysdeps
	@$(MAKE) --no-print-directory venv $(TEST_STAMP) $(CONTRIB_STAMP)

demo: deps
	@bash contrib/demo.sh

# Habits, fast, before the tests: ruff's lint over the tree, its formatter over the driver toolkit
# (hookspecs/host, see pyproject.toml), mypy over core, hookspecs, plugins and cli. mypy sees
# the four folders as the dockyard.* packages they install as through a directory of links.
MYPY_PATH := $(VENV)/mypy-path
TOOLKIT_PY = $(shell find hookspecs/host -name '*.py' | sort)
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check core hookspecs plugins cli
	$(VENV)/bin/ruff format --check $(TOOLKIT_PY)
	@mkdir -p $(MYPY_PATH)/dockyard && for p in core hookspecs plugins cli; do \
	  ln -sfn "$(CURDIR)/$$p" "$(MYPY_PATH)/dockyard/$$p"; done
	MYPYPATH=$(MYPY_PATH) $(VENV)/bin/mypy -p dockyard.core -p dockyard.hookspecs -p dockyard.plugins -p dockyard.cli

# the formatter, over what it holds (see lint)
format: $(TEST_STAMP)
	$(VENV)/bin/ruff format $(TOOLKIT_PY)

test: test-deps
	@$(MAKE) --no-print-directory lint
	$(VENV)/bin/python -m pytest -q tests
	@# each contrib plugin's own conformance run: one line in its tests/ (docs/plugins.md)
	for p in $(CONTRIB_PLUGINS); do $(VENV)/bin/python -m pytest -q $$p/tests || exit 1; done

# A venv of Debian's Python holding a regular (not editable) install of this checkout, the
# commands linked into BINDIR, the systemd units (ExecStart pointing at BINDIR), the socket's
# group, and completion for bash, zsh and fish. Idempotent: run it again to upgrade. With
# systemd running, the socket is enabled and started: the first client starts dockyardd.
install: sysdeps
	$(PYTHON) -m venv $(INSTALL_VENV)
	$(INSTALL_VENV)/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(INSTALL_VENV)/bin/pip install -q --upgrade .
	$(call link-debian-modules,$(INSTALL_VENV))
	install -d $(BINDIR) $(UNITDIR) $(COMPLETIONDIR)/bash-completion/completions \
	  $(COMPLETIONDIR)/zsh/site-functions $(COMPLETIONDIR)/fish/vendor_completions.d
	ln -sfn $(INSTALL_VENV)/bin/dockyard $(BINDIR)/dockyard
	ln -sfn $(INSTALL_VENV)/bin/dockyardd $(BINDIR)/dockyardd
	sed 's#^ExecStart=/usr/local/bin/dockyardd#ExecStart=$(BINDIR)/dockyardd#' contrib/systemd/dockyard.service > $(UNITDIR)/dockyard.service
	sed 's#^SocketGroup=dockyard#SocketGroup=$(or $(SOCKET_GROUP),root)#' contrib/systemd/dockyard.socket > $(UNITDIR)/dockyard.socket
	chmod 644 $(UNITDIR)/dockyard.service $(UNITDIR)/dockyard.socket
	$(INSTALL_VENV)/bin/dockyard completion bash > $(COMPLETIONDIR)/bash-completion/completions/dockyard
	$(INSTALL_VENV)/bin/dockyard completion zsh > $(COMPLETIONDIR)/zsh/site-functions/_dockyard
	$(INSTALL_VENV)/bin/dockyard completion fish > $(COMPLETIONDIR)/fish/vendor_completions.d/dockyard.fish
	@if [ -n "$(SOCKET_GROUP)" ] && ! getent group $(SOCKET_GROUP) >/dev/null; then \
	  groupadd --system $(SOCKET_GROUP) && echo "created group $(SOCKET_GROUP): its members may use the API socket (root-equivalent)"; fi
	@if [ -d /run/systemd/system ] && [ "$(UNITDIR)" = /etc/systemd/system ]; then \
	  systemctl daemon-reload && systemctl enable --now dockyard.socket && \
	  echo "dockyard.socket is listening on /run/dockyard.sock; dockyardd starts on first use"; \
	else echo "installed; systemd is not running here: start dockyardd by hand (dockyardd -H unix:///run/dockyard.sock)"; fi

uninstall:
	-@[ -d /run/systemd/system ] && systemctl disable --now dockyard.socket dockyard.service 2>/dev/null || true
	rm -f $(BINDIR)/dockyard $(BINDIR)/dockyardd $(UNITDIR)/dockyard.service $(UNITDIR)/dockyard.socket \
	  $(COMPLETIONDIR)/bash-completion/completions/dockyard $(COMPLETIONDIR)/zsh/site-functions/_dockyard \
	  $(COMPLETIONDIR)/fish/vendor_completions.d/dockyard.fish
	rm -rf $(INSTALL_VENV)
	-@[ -d /run/systemd/system ] && systemctl daemon-reload || true
	@echo "kept: /etc/dockyard, /var/lib/dockyard and the $(SOCKET_GROUP) group"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
