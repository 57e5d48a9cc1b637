# Registry conformance suite. `make validate` (or `./validate`, which exits with the suite's own status):
# the suite on the local cluster; `make test`: the selftests.
# Both set up what is missing first (the .venv; docker-registry from Debian for the local cluster only)
# and are quick when it is there.
# A real cluster: make validate CLUSTER_KUBECONFIG=~/.kube/config [CLUSTER_CONTEXT=name] [ALLOW_DESTRUCTIVE=yes]
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
REGISTRY_BIN := /usr/bin/docker-registry
PYTEST_ARGS ?=
CLUSTER_KUBECONFIG ?=
CLUSTER_CONTEXT ?=
ALLOW_DESTRUCTIVE ?=
# Pre-upgrade review of a must-gather, offline: make validate MUST_GATHER=DIR (only the readonly checks run).
MUST_GATHER ?=
# issue 8: the local cluster's control plane. Where ../shared/bin holds the real binaries, `make validate`
# runs on the real kube-apiserver and the real operator of OPENSHIFT (4.16, 4.18, 4.20, main); elsewhere
# (a user's fresh clone) on the built-in one. CONTROL_PLANE=builtin|real overrides.
OPENSHIFT ?= 4.18
CONTROL_PLANE ?= $(if $(wildcard ../shared/bin/SHA256SUMS.raw),real,builtin)
ETCD_BIN := /usr/bin/etcd
LOCALCLUSTER_ENV := $(if $(CLUSTER_KUBECONFIG),,LOCALCLUSTER_CONTROL_PLANE=$(CONTROL_PLANE) LOCALCLUSTER_OPENSHIFT=$(OPENSHIFT))
# Path options are passed as --opt=VALUE: pytest would otherwise take the path for a test path.
# Without CLUSTER_KUBECONFIG, `make validate` is the local cluster even when KUBECONFIG is set (the suite
# alone reads KUBECONFIG, as oc does): --local-cluster. A real cluster is named: CLUSTER_KUBECONFIG=$$KUBECONFIG.
CLUSTER_ARGS := $(if $(CLUSTER_KUBECONFIG),--kubeconfig=$(abspath $(CLUSTER_KUBECONFIG)),--local-cluster) \
	$(if $(CLUSTER_CONTEXT),--context=$(CLUSTER_CONTEXT)) \
	$(if $(filter yes true 1,$(ALLOW_DESTRUCTIVE)),--allow-destructive) \
	$(if $(MUST_GATHER),--must-gather=$(abspath $(MUST_GATHER)))

SKOPEO_BIN := /usr/bin/skopeo

.PHONY: validate validate-setup validate-command test setup setup-python report report-setup test-setup detection bench
# Reports (issue 11): Allure 3 from npm in a project-local dir; Chromium for the report and notebook selftests.
ALLURE_DIR := .cache/allure
ALLURE_CLI := $(ALLURE_DIR)/node_modules/.bin/allure
ALLURE_VERSION := 3.18.0
CHROMIUM := /usr/bin/chromium
RUN_DIR ?= reports/latest

# Against a real cluster (CLUSTER_KUBECONFIG) only the Python environment is needed: no apt-get, no sudo,
# no system service touched (RHEL/Fedora bastions have no apt-get). The registry binary (and etcd, for the
# real control plane) are for the local cluster only.
#
# GNU make exits 2 whenever a recipe fails, whatever the recipe's status, so `make validate` cannot end
# with the suite's own exit status (README "Exit statuses"): it prints that status; `./validate` (same
# variables) sets up through `make validate-setup` and then execs `make validate-command`'s command, so its
# status is the suite's.
VALIDATE_SETUP := $(if $(CLUSTER_KUBECONFIG),setup-python,setup)
VALIDATE_CMD = env $(LOCALCLUSTER_ENV) $(PY) -m pytest $(strip $(CLUSTER_ARGS)) $(PYTEST_ARGS)

validate: $(VALIDATE_SETUP)
	$(VALIDATE_CMD) || { status=$$?; echo "make validate: the suite exited with status $$status (README, Exit statuses;" \
	  "make itself exits 2: ./validate exits with the suite's status)" >&2; exit $$status; }

validate-setup: $(VALIDATE_SETUP)

validate-command:
	@printf '%s\n' '$(subst ','\'',$(VALIDATE_CMD))'

test: setup test-setup $(SKOPEO_BIN)
	$(PY) -m pytest selftests $(PYTEST_ARGS)

# Render reports/latest/allure-report/index.html (history kept in reports/allure-history.jsonl).
report: report-setup
	$(PY) -m utilities.allure_report $(RUN_DIR)

report-setup: $(VENV)/.installed $(ALLURE_CLI)

test-setup: report-setup $(CHROMIUM)

$(ALLURE_CLI):
	@command -v npm >/dev/null || { $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; }
	npm install --prefix $(ALLURE_DIR) --no-audit --no-fund --loglevel=error allure@$(ALLURE_VERSION)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

setup: $(REGISTRY_BIN) setup-python $(if $(or $(filter real,$(CONTROL_PLANE)),$(wildcard ../shared/bin/SHA256SUMS.raw)),$(ETCD_BIN))

# The real control plane's etcd (Debian etcd-server); installing it may start a service: stop it.
$(ETCD_BIN):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server
	-$(SUDO) systemctl disable --now etcd >/dev/null 2>&1 || true

# Every fault of selftests/faults/catalogue.py against local clusters: which test caught it, how fast, the
# message, and the faults caught by no test (a few minutes; not part of `make test`).
# DETECTION_ARGS="--only registry.staleTags" runs one.
DETECTION_ARGS ?=
detection: setup
	$(PY) -m selftests.faults.detection $(DETECTION_ARGS)

setup-python: $(VENV)/.installed

# Benchmarks (bench/README.md): each prints its figures and the ratio to its reference; BENCH_ARGS passes
# options to every script (e.g. BENCH_ARGS="--repeat 5 --size-mib 64").
BENCH_ARGS ?=
bench: setup $(SKOPEO_BIN)
	$(PY) -m bench $(BENCH_ARGS)

# skopeo: the selftests push and pull through the route with it, as users do (issue 12).
$(SKOPEO_BIN):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y skopeo


$(REGISTRY_BIN):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y docker-registry
	@# Debian's package may start its own service on :5000 (all interfaces, htpasswd): the suite runs
	@# its own registry processes, so stop it where a service manager started it.
	-$(SUDO) systemctl disable --now docker-registry >/dev/null 2>&1 || true

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  $(if $(CLUSTER_KUBECONFIG),echo "$(PYTHON) -m venv failed: install Python's venv support" >&2 && false; }, \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); })
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@
