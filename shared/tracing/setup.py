"""`setup_tracing`: the one call each service's main makes, and the handle it returns.

Nothing happens at import time: the provider, exporter and sampler are built here from the
arguments and the standard `OTEL_*` environment variables, and handed back in a `Tracing`
that the service passes down to its server, client, broker and engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:  # the SDK is loaded only when tracing is on (shared.tracing.provider)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

TRACER_NAME = "shared.tracing"

log = logging.getLogger(__name__)


class Tracing:
    """What the kit's instrumentation needs: a tracer, and whether to do anything at all.

    `skip_unsampled` is true when the sampler drops every child of an unsampled parent
    (any parent-based sampler, the default). The kit then propagates the parent's context
    as it is instead of asking the SDK for a span it would throw away.
    """

    __slots__ = (
        "_closed",
        "_exporter",
        "enabled",
        "flush_timeout_s",
        "provider",
        "service_name",
        "skip_unsampled",
        "tracer",
    )

    def __init__(
        self,
        tracer: trace.Tracer,
        provider: TracerProvider | None,
        *,
        service_name: str,
        skip_unsampled: bool,
        exporter: SpanExporter | None = None,
        flush_timeout_s: float = 2.0,
    ) -> None:
        self.tracer = tracer
        self.provider = provider
        self.enabled = provider is not None
        self.service_name = service_name
        self.skip_unsampled = skip_unsampled
        self.flush_timeout_s = flush_timeout_s
        self._exporter = exporter
        self._closed = False

    @classmethod
    def disabled(cls, service_name: str = "") -> Tracing:
        """A handle that makes every instrumentation point a pass-through."""
        return cls(trace.NoOpTracer(), None, service_name=service_name, skip_unsampled=True)

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Export every finished span now. Blocks: call it from a thread inside an event loop."""
        if self.provider is None or self._closed:
            return True
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Flush and stop the exporter; idempotent. Blocks: inside an event loop use `stop`.

        The flush lasts at most `flush_timeout_s` (given an exporter): then the exporter is
        shut, which ends its retries and drops the spans left. Without that bound, a
        collector that is down holds the stop for the OTLP exporter's retries (about 7 s).
        """
        if self.provider is None or self._closed:
            return
        self._closed = True
        give_up = None
        if self._exporter is not None:
            give_up = threading.Timer(self.flush_timeout_s, self._give_up, (self._exporter,))
            give_up.daemon = True
            give_up.start()
        try:
            self.provider.shutdown()
        finally:
            if give_up is not None:
                give_up.cancel()

    def _give_up(self, exporter: SpanExporter) -> None:
        log.warning(
            "tracing: spans not exported within %g s of the stop are dropped (is the collector"
            " down?)",
            self.flush_timeout_s,
        )
        exporter.shutdown()

    # The exporter's gRPC call is blocking and may target a receiver served by this very
    # loop (tests, a sidecar in-process): waiting for it on the loop would deadlock.
    async def stop(self) -> None:
        await asyncio.to_thread(self.shutdown)


def setup_tracing(
    service_name: str,
    *,
    version: str,
    environment: str,
    instance_id: str | None = None,
    endpoint: str | None = None,
    sampler: Sampler | None = None,
    exporter: SpanExporter | None = None,
    set_global: bool = False,
    flush_timeout_s: float = 2.0,
) -> Tracing:
    """Build the tracer provider for one service process.

    Environment variables win where the OpenTelemetry spec says they do:
    `OTEL_SDK_DISABLED=true` returns a disabled handle; `OTEL_SERVICE_NAME` replaces
    `service_name`; `OTEL_TRACES_SAMPLER`/`_ARG` choose the sampler unless `sampler` is
    given (default `parentbased_always_on`); `OTEL_EXPORTER_OTLP_ENDPOINT` (and the other
    `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables) configure the exporter unless
    `endpoint` or `exporter` is given. At stop, the spans still buffered are exported for
    at most `flush_timeout_s`.

    The provider is not made the OpenTelemetry global one unless `set_global` (first call
    per process only): the kit passes the handle down, and a global provider switches on
    instrumentation nobody asked for. FastAPI (0.165, as pinned) traces every request
    natively as soon as a global provider exists, which next to `TracingMiddleware`
    doubles the HTTP span and adds spans per dependency, endpoint and serialization.
    """
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or service_name
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Tracing.disabled(name)

    # Imported here: with tracing off (OTEL_SDK_DISABLED), the SDK is never loaded.
    from shared.tracing.provider import drops_unsampled_children, make_provider

    provider, exporter = make_provider(
        name,
        version=version,
        environment=environment,
        instance_id=instance_id,
        endpoint=endpoint,
        sampler=sampler,
        exporter=exporter,
    )
    if set_global and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return Tracing(
        provider.get_tracer(TRACER_NAME),
        provider,
        service_name=name,
        skip_unsampled=drops_unsampled_children(provider.sampler),
        exporter=exporter,
        flush_timeout_s=flush_timeout_s,
    )
