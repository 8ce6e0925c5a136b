"""The kit's client: discovery, breaker, deadline and retries around every call."""

from shared.client.channel import ServiceChannel
from shared.client.client import Client
from shared.client.endpoint import Endpoint, resolve
from shared.client.route import Route

__all__ = ["Client", "Endpoint", "Route", "ServiceChannel", "resolve"]
