"""An etcd registry: a node is a key attached to a lease kept alive by one stream.

When the keep-alive stream breaks (its etcd member stopped) the same lease is kept alive
again through another member of the cluster. When the lease is lost (etcd restarted or
wiped, the network cut for longer than the TTL) the node grants a new lease and
registers again, with backoff, for as long as it runs. Watchers re-read the prefix after
every reconnect (on any member), so neither a wiped etcd nor a change made meanwhile is
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aetcd
import grpc

from shared import backoff
from shared.registry.etcd_client import etcd_client as etcd_client
from shared.registry.etcd_client import parse_endpoints as parse_endpoints
from shared.registry.node import ServiceNode, node_key, service_prefix

log = logging.getLogger(__name__)

# What a failed etcd call raises (the client's errors, the channel's, the socket's, a
# timeout): the one tuple every etcd user of the kit and of the services catches.
ETCD_ERRORS = (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError)
_MAX_BACKOFF_S = 2.0


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """'http://127.0.0.1:2379', '127.0.0.1:2379' or 'etcd' → (host, port); the first of a list."""
    return parse_endpoints(endpoint)[0]


class EtcdRegistry:
    def __init__(
        self,
        endpoint: str = "127.0.0.1:2379",
        *,
        prefix: str = "/micro/registry",
        ttl_s: int = 15,
        call_timeout_s: float = 3.0,
    ) -> None:
        self._client = etcd_client(endpoint)
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._call_timeout_s = call_timeout_s
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._leases: dict[str, int] = {}

    @property
    def client(self) -> aetcd.Client:
        return self._client

    @property
    def prefix(self) -> str:
        return self._prefix

    async def register(self, node: ServiceNode) -> None:
        registered = asyncio.Event()
        await self._stop_keeper(node.id)
        self._keepers[node.id] = asyncio.create_task(
            self._keep_registered(node, registered), name=f"registry-keeper-{node.id}"
        )
        await registered.wait()

    async def deregister(self, node: ServiceNode) -> None:
        lease_id = await self._stop_keeper(node.id)
        with contextlib.suppress(*ETCD_ERRORS):
            async with asyncio.timeout(self._call_timeout_s):
                await self._client.delete(node_key(self._prefix, node.name, node.id).encode())
                if lease_id:
                    await self._client.revoke_lease(lease_id)

    async def get(self, service: str) -> list[ServiceNode]:
        async with asyncio.timeout(self._call_timeout_s):
            result = await self._client.get_prefix(service_prefix(self._prefix, service).encode())
        return [node for kv in result if (node := _decode(kv.value)) is not None]

    async def watch(self, service: str) -> AsyncIterator[list[ServiceNode]]:
        prefix = service_prefix(self._prefix, service).encode()
        waits = _waits()
        while True:
            try:
                async with asyncio.timeout(self._call_timeout_s):
                    listing = await self._client.get_prefix(prefix)
                nodes = {kv.key: node for kv in listing if (node := _decode(kv.value)) is not None}
                yield list(nodes.values())
                waits = _waits()
                watch = await self._client.watch_prefix(
                    prefix, start_revision=listing.header.revision + 1
                )
                async for event in watch:
                    if event.kind == aetcd.EventKind.PUT:
                        if (node := _decode(event.kv.value)) is not None:
                            nodes[event.kv.key] = node
                    else:
                        nodes.pop(event.kv.key, None)
                    yield list(nodes.values())
            except ETCD_ERRORS as error:
                log.debug("watch of %s interrupted: %r", service, error)
            await asyncio.sleep(next(waits))

    async def stop(self) -> None:
        for node_id in list(self._keepers):
            await self._stop_keeper(node_id)
        with contextlib.suppress(*ETCD_ERRORS):
            await self._client.close()

    async def _stop_keeper(self, node_id: str) -> int | None:
        keeper = self._keepers.pop(node_id, None)
        if keeper is None:
            return None
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        return self._leases.pop(node_id, None)

    async def _keep_registered(self, node: ServiceNode, registered: asyncio.Event) -> None:
        key = node_key(self._prefix, node.name, node.id).encode()
        waits = _waits()
        lease_id: int | None = None

        def fresh_waits() -> None:
            nonlocal waits
            waits = _waits()

        while True:
            try:
                if lease_id is None:
                    async with asyncio.timeout(self._call_timeout_s):
                        lease = await self._client.lease(self._ttl_s)
                        await self._client.put(key, node.to_json(), lease=lease)
                    lease_id = self._leases[node.id] = lease.id
                    if registered.is_set():
                        log.info("registered %s again at %s", node.id, node.address)
                    registered.set()
                    fresh_waits()
                await self._keep_alive(lease_id, fresh_waits)
                log.warning("lease of %s lost; registering again", node.id)
                lease_id = None
            except ETCD_ERRORS as error:
                # The lease outlives its stream by up to its TTL: keep the same lease alive
                # through whichever member the channel reaches next (a cluster's other one).
                log.warning("registry unreachable for %s: %r", node.id, error)
            await asyncio.sleep(next(waits))

    async def _keep_alive(self, lease_id: int, on_reply: Callable[[], None]) -> None:
        """Refresh the lease over one long-lived stream; returns when the lease is gone."""
        interval = max(self._ttl_s / 3, 0.5)

        async def requests() -> AsyncIterator[Any]:
            while True:
                yield aetcd.rpc.LeaseKeepAliveRequest(ID=lease_id)
                await asyncio.sleep(interval)

        stream = self._client.leasestub.LeaseKeepAlive(requests(), metadata=self._client.metadata)
        try:
            while True:
                # A reply per request; missing two in a row means the stream is dead.
                async with asyncio.timeout(interval * 2 + self._call_timeout_s):
                    reply = await stream.read()
                if reply is grpc.aio.EOF or reply.TTL <= 0:
                    return
                on_reply()
        finally:
            stream.cancel()


def _waits() -> Iterator[float]:
    """Fresh backoff after each success: etcd's return is noticed within a second or two."""
    return backoff.delays(0.1, _MAX_BACKOFF_S)


def _decode(raw: bytes) -> ServiceNode | None:
    try:
        return ServiceNode.from_json(raw)
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed registry entry: %r", raw[:200])
        return None


# For shared/registry/overview.py, which reads the same entries.
decode_node = _decode
