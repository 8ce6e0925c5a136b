"""The OpenTelemetry SDK's side of `setup_tracing`: the provider, its resource and exporter.

Kept apart so that a service with tracing off never loads the SDK (1.2 to 1.4 MB of each
service's memory): `shared.tracing.setup` imports this module only when tracing is on.
"""

from __future__ import annotations

import uuid

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler


def make_provider(
    service_name: str,
    *,
    version: str,
    environment: str,
    instance_id: str | None,
    endpoint: str | None,
    sampler: Sampler | None,
    exporter: SpanExporter | None,
) -> tuple[TracerProvider, SpanExporter]:
    """A provider exporting in batches to `exporter`, else to OTLP at `endpoint` (or where
    the `OTEL_EXPORTER_OTLP_*` variables say)."""
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.version": version,
            "service.instance.id": instance_id or str(uuid.uuid4()),
            "deployment.environment": environment,
            "deployment.environment.name": environment,
        }
    )
    provider = TracerProvider(
        sampler=sampler, resource=_HashOnceResource(resource.attributes, resource.schema_url)
    )
    if exporter is None:
        # Imported here: it pulls in grpc and the OTLP protos, which a given exporter never needs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


class _HashOnceResource(Resource):
    """A Resource that computes its hash once.

    The OTLP encoder groups every exported span by resource, and `Resource.__hash__`
    JSON-encodes all the attributes each time: about a sixth of the export cost per span.
    """

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash


def drops_unsampled_children(sampler: Sampler) -> bool:
    """Whether `sampler` never samples a child of an unsampled parent."""
    # A ratio or custom sampler may still sample a child of an unsampled parent, so only
    # the samplers that provably never do get the shortcut: every ParentBased built from
    # OTEL_TRACES_SAMPLER delegates unsampled parents to ALWAYS_OFF.
    if isinstance(sampler, ParentBased):
        return (
            getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
            and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
        )
    return sampler is ALWAYS_OFF
