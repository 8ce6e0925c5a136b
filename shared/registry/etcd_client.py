"""The kit's etcd client: one gRPC channel over every member of an etcd cluster.

`etcd_client("a:2379,b:2379,c:2379")` dials all three. aetcd dials a single
`host:port`, so the client here hands gRPC a target naming every member
(`ipv4:10.0.0.1:2379,10.0.0.2:2379,...`) and lets gRPC balance and fail over:

- `round_robin` keeps a connection to each reachable member and sends each call to
  the next ready one; a member that goes away is skipped at once, one that comes back
  is used again after its reconnect (at most a second, see the backoff below).
- Calls that are safe to repeat (reads, puts of a whole value, deletes, lease grants
  and revokes) are retried by gRPC on another member when one answers UNAVAILABLE
  (stopped, or "leader changed" during an election). Transactions are never retried:
  a compare-and-swap that may have been applied must not run twice.
- Calls carry etcd's `hasleader` flag: a member without a leader refuses them at once.
- Streams (watches, lease keep-alives) fail when their member goes; their owners
  resume them on the same channel, hence on another member (see etcd.py).

A single endpoint is passed to gRPC as it is, so a DNS name that resolves to every
member (a Kubernetes headless Service) is balanced over all of them and re-resolved
when members move. A list of names is resolved once, when the client connects: use
it for members with fixed addresses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import aetcd

log = logging.getLogger(__name__)

DEFAULT_PORT = 2379

# Repeatable calls: retried on another member when one is unavailable.
_RETRIED = [
    ("etcdserverpb.KV", "Range"),
    ("etcdserverpb.KV", "Put"),
    ("etcdserverpb.KV", "DeleteRange"),
    ("etcdserverpb.Lease", "LeaseGrant"),
    ("etcdserverpb.Lease", "LeaseRevoke"),
    ("etcdserverpb.Lease", "LeaseTimeToLive"),
    ("etcdserverpb.Maintenance", "Status"),
]
_SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": service, "method": method} for service, method in _RETRIED],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}
# A member cut off from the leader (the quorum lost) answers UNAVAILABLE at once instead
# of holding the call until its deadline: callers fail closed fast (a token check → 503)
# and the retry above tries a member that has a leader. Watches keep no such check.
_REQUIRE_LEADER = ("hasleader", "true")
# grpc's default reconnect backoff grows to 120 s; a registry must notice etcd's return fast.
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 5000,
    "grpc.keepalive_timeout_ms": 3000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.enable_retries": 1,
    "grpc.service_config": json.dumps(_SERVICE_CONFIG),
}


def parse_endpoints(endpoints: str) -> list[tuple[str, int]]:
    """'http://a:2379,b:2379,c' → [('a', 2379), ('b', 2379), ('c', 2379)]."""
    parsed = []
    for part in endpoints.split(","):
        hostport = part.strip().split("://", 1)[-1].rstrip("/")
        if not hostport:
            continue
        host, _, port = hostport.rpartition(":")
        if host and not host.endswith("]") and ":" in host:  # a bare IPv6 address
            parsed.append((hostport, DEFAULT_PORT))
        else:
            parsed.append((host.strip("[]"), int(port)) if host else (hostport, DEFAULT_PORT))
    if not parsed:
        raise ValueError(f"no etcd endpoint in {endpoints!r}")
    return parsed


class ClusterClient(aetcd.Client):  # type: ignore[misc]  # aetcd ships no types
    """An aetcd client whose channel spans every member of the cluster."""

    metadata: tuple[tuple[str, str], ...] | None

    def __init__(self, endpoints: list[tuple[str, int]], **kwargs: object) -> None:
        host, port = endpoints[0]
        super().__init__(host=host, port=port, options=dict(CHANNEL_OPTIONS), **kwargs)
        self._endpoints = endpoints

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return list(self._endpoints)

    async def connect(self) -> None:
        if not self._connected.is_set() and not self._is_connecting:
            # aetcd dials f"{host}:{port}": split the cluster's target at its last colon.
            self._host, _, port = (await self._target()).rpartition(":")
            self._port = int(port)
        await super().connect()
        metadata: tuple[tuple[str, str], ...] = self.metadata or ()
        if _REQUIRE_LEADER not in metadata:
            self.metadata = (*metadata, _REQUIRE_LEADER)

    async def _target(self) -> str:
        if len(self._endpoints) == 1:
            host, port = self._endpoints[0]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        loop = asyncio.get_running_loop()
        v4: list[str] = []
        v6: list[str] = []
        for host, port in self._endpoints:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as error:
                log.warning("etcd member %s:%d does not resolve: %s", host, port, error)
                continue
            for family, _, _, _, sockaddr in infos:
                address = f"{sockaddr[0]}:{port}" if family == socket.AF_INET else None
                if address and address not in v4:
                    v4.append(address)
                elif family == socket.AF_INET6 and (six := f"[{sockaddr[0]}]:{port}") not in v6:
                    v6.append(six)
        if v4:
            return "ipv4:" + ",".join(v4)
        if v6:
            return "ipv6:" + ",".join(v6)
        host, port = self._endpoints[0]  # nothing resolves now: let gRPC keep trying the first
        return f"{host}:{port}"


def etcd_client(endpoints: str) -> aetcd.Client:
    """A client over every member in `endpoints` ("host:port", comma-separated)."""
    return ClusterClient(parse_endpoints(endpoints))
