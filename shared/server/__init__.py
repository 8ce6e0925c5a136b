"""The kit's gRPC server."""

from shared.server.handlers import GuardInterceptor, guard_stream, guard_unary
from shared.server.server import GrpcServer, advertised_host

__all__ = ["GrpcServer", "GuardInterceptor", "advertised_host", "guard_stream", "guard_unary"]
