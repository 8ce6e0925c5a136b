"""`python -m shared.healthcheck grpc|http`: exit 0 when the service in this container is ready.

Docker runs it inside the service's container (the compose `healthcheck`, the image's
`HEALTHCHECK`), so it reads the settings the service reads from the same environment:

- `grpc`: the gRPC health service on `GRPC_PORT` answers SERVING (NOT_SERVING during the
  drain after SIGTERM, so a stopping node turns unhealthy);
- `http`: `GET /readyz` on `HTTP_PORT` answers 2xx (user_api: its downstreams answer);
- no mode: `http` when `HTTP_PORT` is set, else `grpc`.

The host is `GRPC_HOST`/`HTTP_HOST`, or loopback when the service binds every interface.
With `MTLS=true` the `grpc` check shows the service's own certificate (the files in
`TLS_DIR`, else `SERVICE_NAME`'s under `TLS_DEV_ROOT`) and expects the server to be named
as that certificate is: health is open to every identity of the trust domain, but the
handshake needs one.
Exit codes are Docker's: 0 healthy, 1 unhealthy (also for bad arguments: 2 is reserved).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

__all__ = ["check_grpc", "check_http", "main"]

HEALTHY, UNHEALTHY = 0, 1
_WILDCARDS = frozenset(("", "0.0.0.0", "::", "[::]"))
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_SETTINGS = {"grpc": ("GRPC_HOST", "GRPC_PORT"), "http": ("HTTP_HOST", "HTTP_PORT")}


def check_grpc(
    host: str,
    port: int,
    *,
    service: str = "",
    timeout_s: float = 2.0,
    tls: tuple[bytes, bytes, bytes, str] | None = None,
) -> bool:
    """True when the gRPC health service at host:port says `service` is SERVING.

    `tls`: (certificate, key, CA bundle, the server's name) for a server behind mTLS.
    """
    import grpc  # here: an `http` check never pays for importing grpc
    from grpc_health.v1 import health_pb2

    address = f"{_bracketed(host)}:{port}"
    if tls is None:
        channel = grpc.insecure_channel(address)
    else:
        cert, key, ca, name = tls
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        options = [("grpc.ssl_target_name_override", name)]
        channel = grpc.secure_channel(address, credentials, options=options)
    with channel:
        check = channel.unary_unary(
            _HEALTH_CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def check_http(host: str, port: int, *, path: str = "/readyz", timeout_s: float = 2.0) -> bool:
    """True when GET http://host:port/path answers 2xx (proxy variables are ignored)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{_bracketed(host)}:{port}{path}", timeout=timeout_s) as reply:
            status: int = reply.status
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return 200 <= status < 300


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # argparse exits 2, which Docker reserves
        return HEALTHY if stop.code == 0 else UNHEALTHY
    mode: str = args.mode or ("http" if env.get("HTTP_PORT") else "grpc")
    host_var, port_var = _SETTINGS[mode]
    host: str = args.host or _dialable(env.get(host_var, "127.0.0.1"))
    try:
        port = int(args.port if args.port is not None else env.get(port_var, ""))
    except ValueError:
        return _fail(f"no port to check: set {port_var} or pass --port")
    if not 0 < port < 65536:
        return _fail(f"cannot check port {port}: set a fixed {port_var} or pass --port")
    if mode == "grpc":
        try:
            tls = _own_certificate(env)
        except (OSError, ValueError, SystemExit) as error:
            return _fail(f"no certificate for the mTLS health check: {error}")
        ok = check_grpc(host, port, service=args.service, timeout_s=args.timeout, tls=tls)
        target = f"gRPC health of {args.service or 'the server'} at {host}:{port}"
    else:
        ok = check_http(host, port, path=args.path, timeout_s=args.timeout)
        target = f"http://{_bracketed(host)}:{port}{args.path}"
    return HEALTHY if ok else _fail(f"{target} is not ready")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.healthcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument("mode", nargs="?", choices=sorted(_SETTINGS))
    parser.add_argument("--host", help="default: GRPC_HOST/HTTP_HOST, loopback for 0.0.0.0")
    parser.add_argument("--port", type=int, help="default: GRPC_PORT/HTTP_PORT")
    parser.add_argument("--service", default="", help="gRPC service name ('' = whole server)")
    parser.add_argument("--path", default="/readyz", help="HTTP path (default /readyz)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    return parser


def _own_certificate(env: Mapping[str, str]) -> tuple[bytes, bytes, bytes, str] | None:
    """With MTLS on: the service's own certificate, and the name it carries."""
    if env.get("MTLS", "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    from pathlib import Path

    from cryptography import x509

    from shared.security.identity import service_identity
    from shared.security.layout import CertificateFiles
    from shared.security.pki import ensure_identity

    if env.get("TLS_DIR"):
        files = CertificateFiles.in_directory(Path(env["TLS_DIR"]))
    elif env.get("TLS_DEV_ROOT") and env.get("SERVICE_NAME"):
        identity = service_identity(env.get("TRUST_DOMAIN", "micro.local"), env["SERVICE_NAME"])
        files = ensure_identity(Path(env["TLS_DEV_ROOT"]), identity)
    else:
        raise ValueError("set TLS_DIR, or TLS_DEV_ROOT and SERVICE_NAME")
    cert = files.cert.read_bytes()
    names = (
        x509.load_pem_x509_certificate(cert)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )
    if not names:
        raise ValueError(f"{files.cert} names no service (no DNS SAN)")
    return cert, files.key.read_bytes(), files.ca.read_bytes(), names[0]


def _dialable(bind_host: str) -> str:
    return "127.0.0.1" if bind_host.strip() in _WILDCARDS else bind_host.strip()


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _fail(message: str) -> int:
    print(f"unhealthy: {message}", file=sys.stderr)
    return UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
