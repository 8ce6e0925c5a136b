"""The kit's client: discovery, breaker, deadline and retries around every call."""

from shared.client.channel import ServiceChannel
from shared.client.client import Client
from shared.client.endpoint import Endpoint, resolve

__all__ = ["Client", "Endpoint", "ServiceChannel", "resolve"]
