"""The kit's test kit (like `nameko.testing`): services in this process, as they run.

`InProcess` serves a service's `add_to(server, logic)` on a gRPC server registered in
an in-memory registry, exactly as `App.run` registers it, and calls it through the
kit's client (discovery, breakers, deadlines, errors with their reason); it also builds
a service runtime on that registry and an HTTP client over an ASGI transport.

The pytest plugin (`shared.testing.plugin`, registered as the `micro` entry point of
`pytest11`) gives a test an `in_process` fixture, closed after the test.
"""

from shared.testing.inprocess import InProcess, Served, http_client

__all__ = ["InProcess", "Served", "http_client"]
