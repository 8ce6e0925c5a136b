"""The kit's gRPC server, with a chain of middleware around every handler."""

from shared.server.chain import ChainInterceptor
from shared.server.links import Handler, ServerMiddleware
from shared.server.server import GrpcServer, advertised_host
from shared.server.shedding import FAIRNESS_METADATA_KEY, Admission, per_core

__all__ = [
    "FAIRNESS_METADATA_KEY",
    "Admission",
    "ChainInterceptor",
    "GrpcServer",
    "Handler",
    "ServerMiddleware",
    "advertised_host",
    "per_core",
]
