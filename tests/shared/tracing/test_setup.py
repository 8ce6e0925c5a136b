from __future__ import annotations

import subprocess
import sys
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import shared.tracing
from shared.testing import free_port
from shared.tracing import client_span, setup_tracing


def _setup() -> shared.tracing.Tracing:
    return setup_tracing(
        "user_api",
        version="0.1.0",
        environment="dev",
        instance_id="node-1",
        exporter=InMemorySpanExporter(),
        set_global=False,
    )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.delenv(name, raising=False)


def test_all_names_exist() -> None:
    for name in shared.tracing.__all__:
        assert hasattr(shared.tracing, name), name


def test_resource_attributes() -> None:
    tracing = _setup()
    assert tracing.enabled
    assert tracing.provider is not None
    attributes = tracing.provider.resource.attributes
    assert attributes["service.name"] == "user_api"
    assert attributes["service.version"] == "0.1.0"
    assert attributes["service.instance.id"] == "node-1"
    assert attributes["deployment.environment"] == "dev"
    assert attributes["deployment.environment.name"] == "dev"
    tracing.shutdown()
    tracing.shutdown()  # idempotent


def test_instance_id_defaults_to_a_unique_value() -> None:
    first, second = _setup_without_instance(), _setup_without_instance()
    assert first != second


def _setup_without_instance() -> object:
    tracing = setup_tracing(
        "svc", version="1", environment="dev", exporter=InMemorySpanExporter(), set_global=False
    )
    assert tracing.provider is not None
    value = tracing.provider.resource.attributes["service.instance.id"]
    tracing.shutdown()
    return value


def test_otel_service_name_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "renamed")
    tracing = _setup()
    assert tracing.provider is not None
    assert tracing.provider.resource.attributes["service.name"] == "renamed"
    assert tracing.service_name == "renamed"
    tracing.shutdown()


def test_sdk_disabled_is_a_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracing = _setup()
    assert not tracing.enabled
    assert tracing.provider is None
    assert isinstance(tracing.tracer, trace.NoOpTracer)
    with client_span(tracing, "user", "Get", "/user.v1.UserService/Get", "h:1") as (span, md):
        assert md == ()
        assert not span.is_recording()
    assert tracing.force_flush()
    tracing.shutdown()


def test_default_sampler_is_parentbased_always_on() -> None:
    tracing = _setup()
    assert tracing.provider is not None
    assert tracing.provider.sampler.get_description().startswith("ParentBased{root:AlwaysOnSampler")
    assert tracing.skip_unsampled
    tracing.shutdown()


def test_sampler_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    tracing = _setup()
    assert tracing.provider is not None
    assert "TraceIdRatioBased{0.25}" in tracing.provider.sampler.get_description()
    assert tracing.skip_unsampled
    tracing.shutdown()


def test_non_parent_based_sampler_gets_no_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    tracing = _setup()
    assert not tracing.skip_unsampled
    tracing.shutdown()


def test_import_does_no_work() -> None:
    code = (
        "import shared.tracing, shared.logs, logging\n"
        "from opentelemetry import trace\n"
        "assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)\n"
        "assert not logging.getLogger().handlers\n"
        "import sys\n"
        "assert 'opentelemetry.exporter.otlp.proto.grpc.trace_exporter' not in sys.modules\n"
        "assert 'sqlalchemy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_set_global_registers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from shared.tracing import setup_tracing\n"
        "kw = dict(version='1', environment='e', exporter=InMemorySpanExporter())\n"
        "setup_tracing('default', **kw).shutdown()\n"
        "assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)\n"
        "t = setup_tracing('a', set_global=True, **kw)\n"
        "assert trace.get_tracer_provider() is t.provider\n"
        "u = setup_tracing('b', set_global=True, **kw)\n"
        "assert trace.get_tracer_provider() is t.provider\n"
        "t.shutdown(); u.shutdown()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_collector_that_is_down_holds_the_stop_no_longer_than_the_flush_budget() -> None:
    # Nothing listens there: the OTLP exporter retries for about 7 s unless it is cut short.
    tracing = setup_tracing(
        "svc",
        version="1",
        environment="dev",
        endpoint=f"http://127.0.0.1:{free_port()}",
        flush_timeout_s=0.3,
    )
    with client_span(tracing, "user", "Get", "/user.v1.UserService/Get", "h:1"):
        pass
    started = time.monotonic()
    tracing.shutdown()
    assert time.monotonic() - started < 2.5


def test_spans_buffered_at_the_stop_are_exported_within_the_budget() -> None:
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(
        "svc", version="1", environment="dev", exporter=exporter, flush_timeout_s=5
    )
    with client_span(tracing, "user", "Get", "/user.v1.UserService/Get", "h:1"):
        pass
    tracing.shutdown()
    assert [span.name for span in exporter.get_finished_spans()] == ["user.v1.UserService/Get"]


def test_with_tracing_off_a_service_never_loads_the_sdk() -> None:
    # What every service imports, then its setup with OTEL_SDK_DISABLED (as `make run`
    # without a collector): the SDK would be about 2 MB of each service's memory.
    code = (
        "import os, sys\n"
        "import shared.app, shared.runtime\n"
        "from shared.tracing import setup_tracing\n"
        "os.environ['OTEL_SDK_DISABLED'] = 'true'\n"
        "assert not setup_tracing('svc', version='1', environment='e').enabled\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry.sdk')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
