"""What the portal shows: services and their nodes, circuits, declared dependencies.

One `Overview` per process, shared by every viewer: the registry is read at most once per
refresh period whatever the number of open pages, and dependency health checks run in
the background, so a frozen service never delays the view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from shared.registry import NodeStatus, node_statuses
from shared.runtime import Runtime
from user_api.readiness import reachable

log = logging.getLogger(__name__)

# Health checks of dependencies are slower than a registry read: not more often than this.
_REACH_EVERY_S = 1.0


@dataclass
class Snapshot:
    at: float
    nodes: list[NodeStatus] = field(default_factory=list)
    circuits: dict[str, dict[str, Any]] = field(default_factory=dict)
    reachable: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    def services(self) -> dict[str, list[NodeStatus]]:
        grouped: dict[str, list[NodeStatus]] = {}
        for status in self.nodes:
            grouped.setdefault(status.node.name, []).append(status)
        return grouped

    def dependencies(self, service: str) -> list[str]:
        declared = {
            name.strip()
            for status in self.nodes
            if status.node.name == service
            for name in status.node.metadata.get("dependencies", "").split(",")
        }
        return sorted(filter(None, declared))

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "error": self.error,
            "services": {
                name: {
                    "nodes": [_node_json(s) for s in statuses],
                    "dependencies": {d: self.reachable.get(d) for d in self.dependencies(name)},
                }
                for name, statuses in self.services().items()
            },
            "circuits": self.circuits,
        }


class Overview:
    def __init__(self, runtime: Runtime[Any], refresh_s: float) -> None:
        self._runtime = runtime
        self._refresh_s = refresh_s
        self._last: Snapshot | None = None
        self._lock = asyncio.Lock()
        self._reachable: dict[str, bool] = {}
        self._reaching: asyncio.Task[None] | None = None
        self._reached_at = 0.0

    async def snapshot(self) -> Snapshot:
        async with self._lock:
            if self._last is None or time.monotonic() - self._last.at >= self._refresh_s:
                self._last = await self._take()
            return self._last

    async def _take(self) -> Snapshot:
        snapshot = Snapshot(at=time.monotonic(), circuits=_circuits(self._runtime))
        try:
            snapshot.nodes = await node_statuses(self._runtime.registry)
        except Exception as error:  # etcd's own errors, grpc's, OSError, a timeout
            snapshot.error = f"registry unreachable: {error!r}"
            if self._last is not None:
                snapshot.nodes = self._last.nodes  # keep showing what was last known
        self._check_dependencies(snapshot)
        snapshot.reachable = dict(self._reachable)
        return snapshot

    def _check_dependencies(self, snapshot: Snapshot) -> None:
        busy = self._reaching is not None and not self._reaching.done()
        if busy or time.monotonic() - self._reached_at < _REACH_EVERY_S:
            return
        wanted = {d for name in snapshot.services() for d in snapshot.dependencies(name)}
        registered = snapshot.services()
        self._reached_at = time.monotonic()
        self._reaching = asyncio.create_task(self._reach(wanted, registered))

    async def _reach(self, wanted: set[str], registered: dict[str, list[NodeStatus]]) -> None:
        async def one(service: str) -> tuple[str, bool]:
            nodes = registered.get(service, [])
            if any(s.node.metadata.get("protocol") == "http" for s in nodes):
                return service, True  # an HTTP service registered: no gRPC health to ask
            return service, bool(nodes) and await reachable(self._runtime.client, service)

        with contextlib.suppress(Exception):
            self._reachable = dict(await asyncio.gather(*(one(s) for s in sorted(wanted))))

    async def close(self) -> None:
        if self._reaching is not None:
            self._reaching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaching


def _circuits(runtime: Runtime[Any]) -> dict[str, dict[str, Any]]:
    circuits = {}
    for name, entry in runtime.breakers.snapshot().items():
        counts = entry.get("counts", {})
        circuits[name] = {
            "state": str(entry.get("state", "")),
            "error_percent": entry.get("error_percent", 0.0),
            "volume": entry.get("volume", 0),
            "in_flight": entry.get("in_flight", 0),
            # Refused here (bulkhead, open circuit) or shed by the callee: not served.
            "rejected": counts.get("rejected", 0)
            + counts.get("short_circuited", 0)
            + counts.get("shed", 0),
        }
    return circuits


def _node_json(status: NodeStatus) -> dict[str, Any]:
    return {
        "id": status.node.id,
        "address": status.node.address,
        "version": status.node.version,
        "registered_at": status.registered_at,
        "last_heartbeat": status.last_heartbeat,
        "ttl_s": status.ttl_s,
    }
