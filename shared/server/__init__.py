"""The kit's gRPC server, with a chain of middleware around every handler."""

from shared.server.chain import ChainInterceptor
from shared.server.links import Handler, ServerMiddleware
from shared.server.server import GrpcServer, advertised_host

__all__ = ["ChainInterceptor", "GrpcServer", "Handler", "ServerMiddleware", "advertised_host"]
