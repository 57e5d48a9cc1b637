# Registry conformance suite. `make validate`: the suite on the local cluster; `make test`: the selftests.
# Both set up what is missing first (docker-registry from Debian, the .venv) and are quick when it is there.
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
# Path options are passed as --opt=VALUE: pytest would otherwise take the path for a test path.
CLUSTER_ARGS := $(if $(CLUSTER_KUBECONFIG),--kubeconfig=$(abspath $(CLUSTER_KUBECONFIG))) \
	$(if $(CLUSTER_CONTEXT),--context=$(CLUSTER_CONTEXT)) \
	$(if $(filter yes true 1,$(ALLOW_DESTRUCTIVE)),--allow-destructive)

SKOPEO_BIN := /usr/bin/skopeo

.PHONY: validate test setup bench

validate: setup
	$(PY) -m pytest $(strip $(CLUSTER_ARGS)) $(PYTEST_ARGS)

test: setup $(SKOPEO_BIN)
	$(PY) -m pytest selftests $(PYTEST_ARGS)

# Benchmarks (bench/README.md): each prints its figures and the ratio to its reference; BENCH_ARGS passes
# options to every script (e.g. BENCH_ARGS="--repeat 5 --size-mib 64").
BENCH_ARGS ?=
bench: setup $(SKOPEO_BIN)
	$(PY) -m bench $(BENCH_ARGS)

# skopeo: the selftests push and pull through the route with it, as users do (issue 12).
$(SKOPEO_BIN):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y skopeo

setup: $(REGISTRY_BIN) $(VENV)/.installed

$(REGISTRY_BIN):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y docker-registry
	@# Debian's package may start its own service on :5000 (all interfaces, htpasswd): the suite runs
	@# its own registry processes, so stop it where a service manager started it.
	-$(SUDO) systemctl disable --now docker-registry >/dev/null 2>&1 || true

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@
