# The README's two commands are `make run` and `make test`; both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# Ports of the embedded servers that `make run` starts (change them if yours are taken).
ETCD_PORT ?= 2379
ETCD_PEER_PORT ?= 2380
NATS_PORT ?= 4222
export ETCD_PORT ETCD_PEER_PORT NATS_PORT
export ETCD_ENDPOINT ?= 127.0.0.1:$(ETCD_PORT)
export NATS_URL ?= nats://127.0.0.1:$(NATS_PORT)

.PHONY: install run test lint format proto bench new-service clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# auth_service creates its signing key here on first start (never committed).
export JWT_SECRET_FILE ?= .run/jwt_secret
# Spans are exported once there is somewhere to send them:
#   make run OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317   (Jaeger, see the README)
export OTEL_SDK_DISABLED ?= $(if $(OTEL_EXPORTER_OTLP_ENDPOINT),false,true)

run: $(STAMP)
	@echo "starting etcd :$(ETCD_PORT), NATS :$(NATS_PORT), config_service, auth_service, user_service, user_api :8080 (Ctrl-C stops all)"
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

bench: $(STAMP)
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_tracing.py
	$(BIN)/python bench/bench_server_interceptors.py
	$(BIN)/python bench/bench_hot_path.py

# A new service from the template: `make new-service NAME=order [HTTP=1]`.
new-service: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=order [HTTP=1]" >&2; exit 2; }
	$(BIN)/micro new service $(NAME) $(if $(HTTP),--http)

clean:
	rm -rf .run
