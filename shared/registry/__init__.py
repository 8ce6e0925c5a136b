"""Service registry: where nodes announce themselves and clients find them."""

from shared.registry.etcd import (
    ETCD_ERRORS,
    EtcdRegistry,
    etcd_client,
    parse_endpoint,
    parse_endpoints,
)
from shared.registry.memory import MemoryRegistry
from shared.registry.node import ServiceNode, node_key, service_prefix
from shared.registry.overview import NodeStatus, node_statuses
from shared.registry.protocol import Registry

__all__ = [
    "ETCD_ERRORS",
    "EtcdRegistry",
    "MemoryRegistry",
    "NodeStatus",
    "Registry",
    "ServiceNode",
    "etcd_client",
    "node_key",
    "node_statuses",
    "parse_endpoint",
    "parse_endpoints",
    "service_prefix",
]
