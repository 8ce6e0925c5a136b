"""Every registered node of every service, with its last heartbeat: a view of the system.

An etcd node's heartbeat is its lease keepalive, which resets the lease's remaining time
to live to the granted one; so the time since the last keepalive is `granted - remaining`
(to etcd's resolution of a second). Other registries have no heartbeat to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from shared.registry.etcd import ETCD_ERRORS, EtcdRegistry, decode_node
from shared.registry.memory import MemoryRegistry
from shared.registry.node import ServiceNode

__all__ = ["NodeStatus", "node_statuses"]


@dataclass(frozen=True)
class NodeStatus:
    node: ServiceNode
    # Wall-clock time (unix seconds) of the last heartbeat, None when unknown.
    last_heartbeat: float | None = None
    # The lease's time to live: the node disappears this long after its last heartbeat.
    ttl_s: int | None = None

    @property
    def registered_at(self) -> float | None:
        with contextlib.suppress(KeyError, ValueError):
            return float(self.node.metadata["registered_at"])
        return None


async def node_statuses(registry: object, *, timeout: float = 2.0) -> list[NodeStatus]:
    """Every node in `registry` (an etcd or memory registry), sorted by service and id."""
    if isinstance(registry, EtcdRegistry):
        statuses = await _etcd(registry, timeout)
    elif isinstance(registry, MemoryRegistry):
        statuses = [NodeStatus(node) for node in await registry.all()]
    else:
        raise TypeError(f"cannot list the nodes of {type(registry).__name__}")
    return sorted(statuses, key=lambda s: (s.node.name, s.node.id))


async def _etcd(registry: EtcdRegistry, timeout: float) -> list[NodeStatus]:
    async with asyncio.timeout(timeout):
        listing = await registry.client.get_prefix(f"{registry.prefix.rstrip('/')}/".encode())
        found = [(node, kv.lease) for kv in listing if (node := decode_node(kv.value))]
        heartbeats = await asyncio.gather(*(_heartbeat(registry, lease) for _, lease in found))
    pairs = zip(found, heartbeats, strict=True)
    return [NodeStatus(node, last, ttl) for (node, _), (last, ttl) in pairs]


async def _heartbeat(registry: EtcdRegistry, lease_id: int) -> tuple[float | None, int | None]:
    if not lease_id:
        return None, None
    try:
        info = await registry.client.get_lease_info(lease_id, keys=False)
    except ETCD_ERRORS:
        return None, None
    if info.TTL <= 0:  # expired or revoked between the listing and now
        return None, None
    return time.time() - (info.grantedTTL - info.TTL), int(info.grantedTTL)
