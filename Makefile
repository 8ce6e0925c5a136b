# The README's two commands are `make run` and `make test`; both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# `make run` listens on user_api's HTTP_PORT (8080) and, for its own processes, ETCD_PORT
# (2379), ETCD_PEER_PORT (2380), NATS_PORT (4222), CONFIG_GRPC_PORT, AUTH_GRPC_PORT and
# USER_GRPC_PORT (50051-50053). scripts/check_ports.py checks them before anything starts:
# a taken port you set (or 8080) stops `make run` with the command to use instead; a taken
# default of its own processes is replaced by a free port. Set any on the command line:
#   make run HTTP_PORT=8088 NATS_PORT=14222

.PHONY: install run test test-unit lint format proto schemas bench new-service k8s clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,local,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# For `make run` only (the tests set up their own): auth_service creates its signing key
# here on first start (never committed), and spans are exported once there is somewhere
# to send them:
#   make run OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317   (Jaeger, see the README)
run: export JWT_SECRET_FILE ?= .run/jwt_secret
run: export OTEL_SDK_DISABLED ?= $(if $(OTEL_EXPORTER_OTLP_ENDPOINT),false,true)

# mTLS on every gRPC hop: a development CA under .run/tls issues each service's
# certificate on its first start (and the `micro` CLI's operator certificate): no set-up.
run: export MTLS ?= true
run: export TLS_DEV_ROOT ?= $(if $(RUN_DIR),$(RUN_DIR),.run)/tls
run: $(STAMP)
	@ports="$$($(BIN)/python scripts/check_ports.py)" && eval "$$ports" \
	&& echo "starting etcd :$$ETCD_PORT, NATS :$$NATS_PORT, config_service :$$CONFIG_GRPC_PORT," \
	     "auth_service :$$AUTH_GRPC_PORT, user_service :$$USER_GRPC_PORT," \
	     "user_api http://127.0.0.1:$$USER_API_HTTP_PORT (Ctrl-C stops all)" \
	&& PATH="$(abspath $(BIN)):$$PATH" exec $(BIN)/honcho start

# With coverage of shared/ (service processes included): below [tool.coverage.report]
# fail_under it fails.
test: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term

# The quick loop: the tests that start no real server.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

# The settings schemas config_service checks pushed configuration against.
schemas: $(STAMP)
	$(BIN)/python scripts/gen_schemas.py

bench: $(STAMP)
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_tracing.py
	$(BIN)/python bench/bench_server_interceptors.py
	$(BIN)/python bench/bench_hot_path.py
	$(BIN)/python bench/bench_mtls.py

# A new service from the template: `make new-service NAME=order [HTTP=1]`.
new-service: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=order [HTTP=1]" >&2; exit 2; }
	$(BIN)/micro new service $(NAME) $(if $(HTTP),--http)

# The Kubernetes manifests, rendered offline: `make k8s` (development) or
# `make k8s OVERLAY=production > production.yaml`; apply with `kubectl apply -k`.
OVERLAY ?= development
k8s: $(STAMP)
	@$(BIN)/kubectl kustomize deploy/k8s/overlays/$(OVERLAY)

clean:
	rm -rf .run
