"""An etcd registry: a node is a key attached to a lease kept alive by one stream.

When the lease is lost (etcd restarted or wiped, the network cut for longer than the
TTL) the node grants a new lease and registers again, with backoff, for as long as it
runs. Watchers re-read the prefix after every reconnect, so a wiped etcd is seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aetcd
import grpc

from shared import backoff
from shared.registry.node import ServiceNode, node_key, service_prefix

log = logging.getLogger(__name__)

# grpc's default reconnect backoff grows to 120 s; a registry must notice etcd's return fast.
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 5000,
    "grpc.keepalive_timeout_ms": 3000,
    "grpc.keepalive_permit_without_calls": 1,
}
# What a failed etcd call raises (the client's errors, the channel's, the socket's, a
# timeout): the one tuple every etcd user of the kit and of the services catches.
ETCD_ERRORS = (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError)
_MAX_BACKOFF_S = 2.0


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """'http://127.0.0.1:2379', '127.0.0.1:2379' or 'etcd' → (host, port)."""
    hostport = endpoint.split("://", 1)[-1].split(",", 1)[0].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return (host, int(port)) if host else (hostport, 2379)


def etcd_client(endpoint: str) -> aetcd.Client:
    """An etcd client that reconnects within a second of etcd's return."""
    host, port = parse_endpoint(endpoint)
    return aetcd.Client(host=host, port=port, options=_CHANNEL_OPTIONS)


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
        while True:
            try:
                async with asyncio.timeout(self._call_timeout_s):
                    lease = await self._client.lease(self._ttl_s)
                    await self._client.put(key, node.to_json(), lease=lease)
                self._leases[node.id] = lease.id
                if registered.is_set():
                    log.info("registered %s again at %s", node.id, node.address)
                registered.set()
                waits = _waits()
                await self._keep_alive(lease.id)
                log.warning("lease of %s lost; registering again", node.id)
            except ETCD_ERRORS as error:
                log.warning("registry unreachable for %s: %r", node.id, error)
            await asyncio.sleep(next(waits))

    async def _keep_alive(self, lease_id: int) -> None:
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
