"""gRPC credentials for mutual TLS from a `ReloadingCertificate`.

Servers require a client certificate issued by the trusted CA and pick up a rotated
certificate on the next handshake (`grpc.dynamic_ssl_server_credentials`). Clients get
credentials built from the current files when they open a channel, and check the server
by the DNS SAN equal to the service name they looked up: gRPC Python cannot match URI
SANs, so `grpc.ssl_target_name_override` is how a client says whom it expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from shared.security.reload import Material, ReloadingCertificate

ChannelOptions = Sequence[tuple[str, Any]]


def _server_config(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.ca
    )


def server_credentials(source: ReloadingCertificate) -> grpc.ServerCredentials:
    """Credentials that require and verify client certificates and follow rotations."""
    served = [source.version]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each new handshake; None keeps the current configuration.
        material = source.current()
        if source.version == served[0]:
            return None
        served[0] = source.version
        return _server_config(material)

    return grpc.dynamic_ssl_server_credentials(
        _server_config(source.current()),
        fetch,  # type: ignore[arg-type]  # the stubs forget that None means "unchanged"
        require_client_authentication=True,
    )


def channel_credentials(source: ReloadingCertificate) -> grpc.ChannelCredentials:
    """Credentials from the current files; a channel keeps those it was created with."""
    material = source.current()
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert
    )


def expect_server(service: str, options: ChannelOptions = ()) -> list[tuple[str, Any]]:
    """Channel options that accept only a server whose certificate names `service`."""
    return [*options, ("grpc.ssl_target_name_override", service)]


def secure_channel(
    address: str, service: str, source: ReloadingCertificate, options: ChannelOptions = ()
) -> grpc.aio.Channel:
    """A mutual-TLS channel to a node of `service` at `address`."""
    return grpc.aio.secure_channel(
        address, channel_credentials(source), options=expect_server(service, options)
    )
