"""The kit's etcd client: one gRPC channel over every member of an etcd cluster.

`etcd_client("a:2379,b:2379,c:2379")` dials all three. aetcd dials a single
`host:port`, so the client here hands gRPC a target naming every member
(`ipv4:10.0.0.1:2379,10.0.0.2:2379,...`) and lets gRPC balance and fail over:

- `round_robin` keeps a connection to each reachable member and sends each call to
  the next ready one; a member that goes away is skipped at once, one that comes back
  is used again after its reconnect (at most a second, see the backoff below).
- A member that hangs (or whose machine drops off the network) sends no RST: its
  connections stay open and it answers nothing. gRPC's outlier detection sets it aside
  for 10 s once most of its calls in a tenth of a second failed (one of three members at
  most, and only with three or more), so that round robin stops handing it every third
  call.
- Calls that are safe to repeat (reads, puts of a whole value, deletes, lease grants
  and revokes) are retried by gRPC on another member when one answers UNAVAILABLE
  (stopped, or "leader changed" during an election), or does not answer within
  `ATTEMPT_S` (a read) or `WRITE_ATTEMPT_S` (a write): it hangs. Transactions are never
  retried: a compare-and-swap that may have been applied must not run twice.
- Calls carry etcd's `hasleader` flag: a member without a leader refuses them at once.
- Streams (watches, lease keep-alives) fail when their member goes; their owners
  resume them on the same channel, hence on another member (see etcd.py). A member that
  hangs is found out by HTTP/2 pings within about 7 s (see `CHANNEL_OPTIONS`): until then
  a watch it serves delivers nothing, and a token check or a discovery answers from what
  its owner has already seen.

A single endpoint is passed to gRPC as it is, so a DNS name that resolves to every
member (a Kubernetes headless Service) is balanced over all of them and re-resolved
when members move. A list of names is resolved once, when the client connects: use
it for members with fixed addresses.

With etcd's auth on, the client logs in with a username and password. aetcd does so once,
at connect; etcd forgets that token when it restarts, when the user's password or the
auth store changes, and after `--auth-token-ttl` without use. So every unary call that
etcd refuses for its token ("invalid auth token", "auth store is old") logs in again and
is retried once: the refusal came before anything was applied, so even a transaction is
safe to repeat. Streams (watches, keep-alives) read the new token when they reopen.
Chosen over `--auth-token=jwt` with a long TTL because a JWT still expires and that needs
a key pair for etcd in every deployment; re-authenticating covers restarts as well.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aetcd
import aetcd.exceptions
from aetcd import rpc

log = logging.getLogger(__name__)

DEFAULT_PORT = 2379

# How long one attempt may wait for its answer before gRPC sends the call to another
# member: for a read 3x etcd's own "took too long" warning for a request (so that even two
# attempts on a member that hangs leave a revocation check within its 1 s bound); for a
# write more, as its time is also the disk's (an fsync here and on a follower), which a busy
# but healthy cluster stretches. Five attempts that all run out fail the call.
ATTEMPT_S = 0.3
WRITE_ATTEMPT_S = 1.0
# Repeatable calls: retried on another member when one is unavailable or silent.
_READS = [
    ("etcdserverpb.KV", "Range"),
    ("etcdserverpb.Lease", "LeaseTimeToLive"),
    ("etcdserverpb.Maintenance", "Status"),
]
_WRITES = [
    ("etcdserverpb.KV", "Put"),
    ("etcdserverpb.KV", "DeleteRange"),
    ("etcdserverpb.Lease", "LeaseGrant"),
    ("etcdserverpb.Lease", "LeaseRevoke"),
]
_RETRY = {
    "maxAttempts": 5,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_SERVICE_CONFIG = {
    "loadBalancingConfig": [
        {
            # One failed call in an interval is enough: a member that hangs gets few calls,
            # each of which waits out its attempt (a one-off error on a healthy member
            # only sets it aside for 10 s, the others serve meanwhile).
            "outlier_detection_experimental": {
                "interval": "0.1s",
                "baseEjectionTime": "10s",
                "maxEjectionPercent": 34,
                "failurePercentageEjection": {
                    "threshold": 50,
                    "enforcementPercentage": 100,
                    "minimumHosts": 3,
                    "requestVolume": 1,
                },
                "childPolicy": [{"round_robin": {}}],
            }
        }
    ],
    "methodConfig": [
        {
            "name": [{"service": service, "method": method} for service, method in _READS],
            "retryPolicy": {**_RETRY, "perAttemptRecvTimeout": f"{ATTEMPT_S}s"},
        },
        {
            "name": [{"service": service, "method": method} for service, method in _WRITES],
            "retryPolicy": {**_RETRY, "perAttemptRecvTimeout": f"{WRITE_ATTEMPT_S}s"},
        },
    ],
}
# A member cut off from the leader (the quorum lost) answers UNAVAILABLE at once instead
# of holding the call until its deadline: callers fail closed fast (a token check → 503)
# and the retry above tries a member that has a leader. Watches keep no such check.
_REQUIRE_LEADER = ("hasleader", "true")
# grpc's default reconnect backoff grows to 120 s; a registry must notice etcd's return fast.
# `min_reconnect_backoff_ms` is, despite its name, how long one connection attempt may take
# (gRPC's MIN_CONNECT_TIMEOUT): at 100 ms a busy or distant member that needs longer to send
# its first HTTP/2 frame is never reached. A refused connection fails at once regardless.
#
# A watch or a keep-alive stream on a member that hangs would wait for ever (outlier
# detection sees only calls that end). HTTP/2 pings find it out: every 5 s (the
# least etcd allows: `--grpc-keepalive-min-time`), answered within 2 s, for as long as a call
# or a stream is open. gRPC stops pinging after two pings without data by default, which an
# idle watch never sends (`max_pings_without_data`: 0 lifts that); and etcd answers pings on
# a connection without streams with GOAWAY "too_many_pings" (`permit_without_calls`: 0). The
# ping's deadline is `ping_timeout_ms` in this gRPC; `keepalive_timeout_ms` for older ones.
# `enable_hedging` lets gRPC read `perAttemptRecvTimeout` from the service config.
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 5000,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.keepalive_time_ms": 5000,
    "grpc.keepalive_timeout_ms": 2000,
    "grpc.http2.ping_timeout_ms": 2000,
    "grpc.http2.max_pings_without_data": 0,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.enable_retries": 1,
    "grpc.experimental.enable_hedging": 1,
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
    _username: str | None
    _password: str | None

    def __init__(self, endpoints: list[tuple[str, int]], **kwargs: object) -> None:
        host, port = endpoints[0]
        super().__init__(host=host, port=port, options=dict(CHANNEL_OPTIONS), **kwargs)
        self._endpoints = endpoints
        self._login = asyncio.Lock()
        self.logins = 0  # tokens obtained after the first, for tests and debugging

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return list(self._endpoints)

    async def connect(self) -> None:
        if not self._connected.is_set() and not self._is_connecting:
            # aetcd dials f"{host}:{port}": split the cluster's target at its last colon.
            self._host, _, port = (await self._target()).rpartition(":")
            self._port = int(port)
        try:
            await super().connect()
        except _UNREACHABLE:
            if self._username is None:
                raise
            await self._connect_without_login()
        except aetcd.exceptions.PreconditionFailedError as error:
            if "not enabled" not in str(error):
                raise
            # "authentication is not enabled": an etcd without auth serves everyone.
            await self._connect_without_login()
        metadata: tuple[tuple[str, str], ...] = self.metadata or ()
        if _REQUIRE_LEADER not in metadata:
            self.metadata = (*metadata, _REQUIRE_LEADER)

    async def _connect_without_login(self) -> None:
        """etcd is down: connect as aetcd does without credentials, so that the caller
        keeps trying as it would without auth; the first call refused logs in."""
        if self.channel is not None:
            await self.channel.close()
        login = self._username, self._password
        self._username = self._password = None
        try:
            await super().connect()
        finally:
            self._username, self._password = login

    async def reauthenticate(self, stale: tuple[tuple[str, str], ...] | None) -> None:
        """A new token, unless another call already replaced `stale` with one."""
        async with self._login:
            if self.metadata != stale:
                return
            reply = await rpc.AuthStub(self.channel).Authenticate(
                rpc.AuthenticateRequest(name=self._username, password=self._password),
                timeout=self._timeout,
            )
            others = tuple(item for item in self.metadata or () if item[0] != "token")
            self.metadata = (("token", reply.token), *others)
            if self._watcher is not None:  # new watches carry the new token
                self._watcher._metadata = self.metadata
            self.logins += 1
            log.info("etcd token renewed for user %s", self._username)

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


# etcd's answers to a token it no longer accepts (or none, after connecting while down).
_STALE_TOKEN = ("invalid auth token", "auth store is old", "user name is empty")
_UNREACHABLE = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)
# The unary calls that log in again once on a stale token.
_RELOGGED = (
    "get",
    "get_prefix",
    "get_range",
    "get_all",
    "put",
    "delete",
    "delete_prefix",
    "delete_range",
    "transaction",
    "lease",
    "revoke_lease",
    "refresh_lease",
    "get_lease_info",
    "status",
    "watch",  # its creation: a stream that breaks later is reopened by its owner
    "watch_once",
)


def _relogging(call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(call)
    async def relogged(self: ClusterClient, *args: Any, **kwargs: Any) -> Any:
        await self.connect()  # so that `stale` is the token this call is sent with
        stale = self.metadata
        try:
            return await call(self, *args, **kwargs)
        except aetcd.exceptions.ClientError as error:
            if self._username is None or not any(s in str(error) for s in _STALE_TOKEN):
                raise
        await self.reauthenticate(stale)
        return await call(self, *args, **kwargs)

    return relogged


for _name in _RELOGGED:
    setattr(ClusterClient, _name, _relogging(getattr(aetcd.Client, _name)))


def etcd_client(
    endpoints: str, *, username: str | None = None, password: str | None = None
) -> aetcd.Client:
    """A client over every member in `endpoints` ("host:port", comma-separated), logged in
    as `username` when etcd's auth is on."""
    return ClusterClient(parse_endpoints(endpoints), username=username, password=password)
