# The two commands the README promises: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
BIN := $(VENV)/bin
DEMO_DIR ?= $(CURDIR)/.demo
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)

# Debian packages the tests and the demo run for real (the roles install their own on
# real hosts; preinstalling them here keeps test runs offline-fast and deterministic).
APT_PACKAGES := git gnupg xz-utils nginx-light rsync wget curl ca-certificates util-linux python3-gnupg \
	mmdebstrap zstd chromium fonts-dejavu-core

.PHONY: all deps venv apt demo demo-stop test unit integration lint sanity molecule bench clean

all: test

venv: $(BIN)/.installed

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

deps: apt venv

demo: deps
	$(BIN)/python tests/fixtures/demo.py --demo-dir $(DEMO_DIR) --python $(BIN)/python

demo-stop:
	-$(BIN)/python tests/fixtures/demo.py --demo-dir $(DEMO_DIR) --stop

# Needs neither apt-get nor root: the unit tests use git, gpg and xz from the host as they are,
# and the few that mount, chown or chroot are marked requires_root and skip for other users.
unit: venv
	$(BIN)/pytest -q tests/unit

integration: deps
	$(BIN)/pytest -q tests/integration

# ansible-lint at the collection root with no paths, as Galaxy's importer runs it.
lint: deps
	$(BIN)/ansible-lint --offline --profile production
	$(BIN)/antsibull-changelog lint
	$(BIN)/python tools/role_readme.py --check
	@for m in plugins/modules/*.py; do \
	  $(BIN)/ansible-doc gentoo_binhost.infra.$$(basename $$m .py) >/dev/null || exit 1; done

# GBH_COMPILER_STAGE: also build the test stage with gcc and prove a C package compiles in it.
# The unit tests run once, under `ansible-test units` in tests/ecosystem, which checks that it
# ran and passed exactly the tests pytest collects in tests/unit.
test: deps
	GBH_COMPILER_STAGE=1 $(BIN)/pytest -q -ra tests/integration tests/ecosystem
	$(MAKE) --no-print-directory lint

# ansible-test sanity and units from a temporary ansible_collections/ layout (offline get-pip
# stand-in), once per ansible-core minor version meta/runtime.yml claims, each version's
# ansible-test in a venv of its own; tests/ecosystem/test_ansible_test.py runs the same under
# make test.
sanity: deps
	$(BIN)/python tests/ecosystem/ansible_test_offline.py sanity --ansible-core claimed
	$(BIN)/python tests/ecosystem/ansible_test_offline.py units --ansible-core claimed

# One scenario per role (create, converge, idempotence, verify, destroy) on localhost in a
# private mount namespace; tests/ecosystem/test_molecule.py runs the same under make test.
molecule: deps
	$(BIN)/python tests/ecosystem/run_molecule.py

bench: deps
	$(BIN)/python bench/snapshot_import.py
	$(BIN)/python bench/stage_unpack.py
	$(BIN)/python bench/build_rerun.py
	$(BIN)/python bench/binpkg_publish.py

# The demo's chroots are unmounted by the role; clean refuses anyway while anything is mounted
# below the demo, and --one-file-system keeps rm from ever crossing into a mount.
clean:
	@if [ -d $(DEMO_DIR) ] && [ -x $(BIN)/python ]; then $(MAKE) --no-print-directory demo-stop; fi
	@if findmnt -rn -o TARGET | grep -q -e '^$(DEMO_DIR)$$' -e '^$(DEMO_DIR)/'; then \
	  echo "refusing to clean: mounts below $(DEMO_DIR):"; findmnt -rn -o TARGET | grep '^$(DEMO_DIR)'; exit 1; fi
	rm -rf --one-file-system $(VENV) $(DEMO_DIR) .pytest_cache
