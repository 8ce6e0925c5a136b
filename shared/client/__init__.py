"""The kit's client: discovery, then a chain of middleware (see `shared.client.chain`)
around every call: tracing, metrics, deadline, your links, retry, breaker."""

from shared.client.call import Call, ClientMiddleware, Handler
from shared.client.channel import ServiceChannel
from shared.client.client import Client
from shared.client.endpoint import Endpoint, resolve
from shared.client.metrics import ClientMetrics
from shared.client.route import Route

__all__ = [
    "Call",
    "Client",
    "ClientMetrics",
    "ClientMiddleware",
    "Endpoint",
    "Handler",
    "Route",
    "ServiceChannel",
    "resolve",
]
