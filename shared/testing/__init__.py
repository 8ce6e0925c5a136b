"""The kit's test kit (like `nameko.testing`): services in this process, as they run.

`InProcess` serves a service's `add_to(server, logic)` on a gRPC server registered in
an in-memory registry, exactly as `App.run` registers it, and calls it through the
kit's client (discovery, breakers, deadlines, errors with their reason); it also builds
a service runtime on that registry and an HTTP client over an ASGI transport.

`free_port()` gives the port for a process a test is about to start, one the kernel will
not hand to a server that binds port 0 meanwhile.

The pytest plugin (`shared.testing.plugin`, registered as the `micro` entry point of
`pytest11`) gives a test an `in_process` fixture, closed after the test.
"""

from shared.testing.inprocess import InProcess, Served, http_client
from shared.testing.ports import free_port

__all__ = ["InProcess", "Served", "free_port", "http_client"]
