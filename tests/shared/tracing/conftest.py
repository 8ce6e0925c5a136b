from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from shared.tracing import Tracing, setup_tracing
from tests.support.otlp import otlp_receiver

__all__ = ["otlp_receiver"]


class Recorded:
    """A Tracing exporting to memory, and the finished spans by name."""

    def __init__(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        self.tracing = tracing
        self.exporter = exporter

    def spans(self) -> list[ReadableSpan]:
        self.tracing.force_flush()
        return list(self.exporter.get_finished_spans())

    def one(self, name: str) -> ReadableSpan:
        matches = [span for span in self.spans() if span.name == name]
        assert len(matches) == 1, [span.name for span in self.spans()]
        return matches[0]


@pytest.fixture
def make_recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Recorded]]:
    for name in ("OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    made: list[Recorded] = []

    def make(sampler: Sampler | None = None, service: str = "test-svc") -> Recorded:
        exporter = InMemorySpanExporter()
        tracing = setup_tracing(
            service,
            version="1.2.3",
            environment="test",
            sampler=sampler,
            exporter=exporter,
            set_global=False,
        )
        made.append(Recorded(tracing, exporter))
        return made[-1]

    yield make
    for recorded in made:
        recorded.tracing.shutdown()


@pytest.fixture
def recorded(make_recorded: Callable[..., Recorded]) -> Recorded:
    return make_recorded()
