"""Login events on a real 3-node NATS cluster with R3 streams: a node killed, or frozen,
mid-way loses none and duplicates none.

The services get NATS_URL with every node and NATS_STREAM_REPLICAS=3; the node lost is the
one user_api (the publisher) is connected to. A killed node's connections are reset at
once; a frozen one (SIGSTOP, as a machine that hangs or drops off the network) keeps them
open and answers nothing, so only the clients' pings find it out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest

from tests.conftest import StartService
from tests.support.eventually import eventually
from tests.support.http import login, wait_until_ready
from tests.support.nats import NatsCluster, NatsServer
from tests.support.ports import free_port
from tests.user_service.test_login_events import history

pytestmark = pytest.mark.integration

LOGINS = 200
ACK_WAIT_S = 5  # a delivery the lost node took with it comes again this much later
LOSE_AFTER = 60
LoseNode = Callable[[NatsServer], Awaitable[None]]


@pytest.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[NatsCluster]:
    cluster = NatsCluster(tmp_path / "nats-cluster")
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


async def jetstream_ready(url: str) -> bool:
    """The cluster has elected its JetStream meta leader (streams can be created)."""
    try:
        connection = await nats.connect(url.split(","), connect_timeout=1, max_reconnect_attempts=0)
    except Exception:
        return False
    try:
        await connection.jetstream(timeout=1).account_info()
        return True
    except Exception:
        return False
    finally:
        await connection.close()


async def node_of(cluster: NatsCluster, client_name: str) -> int:
    """The index of the node the client named `client_name` is connected to."""
    for index, node in enumerate(cluster.nodes):
        if node.running and any(
            c.get("name") == client_name for c in await cluster.connections(index)
        ):
            return index
    raise LookupError(client_name)


@pytest.fixture(params=["killed", "frozen"])
def lose(request: pytest.FixtureRequest, nats_cluster: NatsCluster) -> Iterator[LoseNode]:
    """How the node is lost mid-way."""
    lost: list[NatsServer] = []

    async def kill_or_freeze(node: NatsServer) -> None:
        lost.append(node)
        if request.param == "killed":
            await node.kill()
        else:
            node.freeze()

    yield kill_or_freeze
    for node in lost:
        node.thaw()


async def test_losing_a_node_during_logins_loses_and_duplicates_no_event(
    nats_cluster: NatsCluster, start_service: StartService, mariadb_database: str, lose: LoseNode
) -> None:
    async with asyncio.timeout(85 + ACK_WAIT_S):
        await eventually(lambda: jetstream_ready(nats_cluster.url), lambda ok: ok, timeout=20)
        database_url = mariadb_database
        common = {
            "NATS_URL": nats_cluster.url,
            "NATS_STREAM_REPLICAS": "3",
            "USE_CONFIG_SERVICE": "false",
            "BROKER_ACK_WAIT_S": str(ACK_WAIT_S),
        }
        port = free_port()
        start_service("auth_service", **common)
        start_service("user_service", DATABASE_URL=database_url, **common)
        start_service("user_api", HTTP_PORT=str(port), **common)
        base_url = f"http://127.0.0.1:{port}"
        await wait_until_ready(base_url)
        victim = await eventually(
            lambda: _node_or_none(nats_cluster, "user_api"), lambda i: i is not None
        )
        assert victim is not None

        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        statuses: list[int] = []
        retried: list[str] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=15, limits=limits) as http:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for number in range(LOGINS):
                queue.put_nowait(number)

            async def worker() -> None:
                while not queue.empty():
                    number = queue.get_nowait()
                    if number == LOSE_AFTER:
                        await lose(nats_cluster.nodes[victim])
                    # A login the edge gave up on (a 504 from a 1 s deadline on a loaded
                    # machine) published nothing: the user tries again, as a user would.
                    for _ in range(3):
                        response = await login(http)
                        status = response.status_code
                        if status < 500:
                            break
                        retried.append(f"{status} {response.text[:100]}")
                    statuses.append(status)

            await asyncio.gather(*(worker() for _ in range(4)))
        assert statuses == [200] * LOGINS
        assert len(retried) <= 20, retried  # only a loaded machine's 1 s deadlines

        survivor = next(
            node for node in nats_cluster.nodes if node is not nats_cluster.nodes[victim]
        )
        connection = await nats.connect(survivor.url)
        try:
            js = connection.jetstream(timeout=5)

            async def stored() -> int:
                # The stream's API answers once its leader is re-elected (a few seconds).
                try:
                    info = await js.stream_info("USER", subjects_filter="user.logged_in")
                except nats.errors.Error:
                    return -1
                return (info.state.subjects or {}).get("user.logged_in", 0)

            assert await eventually(stored, lambda count: count >= LOGINS, timeout=30) == LOGINS
            info = await js.stream_info("USER")
        finally:
            await connection.close()
        assert info.config.num_replicas == 3
        # An event user_service pulled but could not ack before the node went (or whose
        # delivery the node took with it) comes again once ack_wait has passed.
        rows = await eventually(
            lambda: history(database_url), lambda r: r[0] >= LOGINS, timeout=ACK_WAIT_S + 15
        )
        assert rows == (LOGINS, LOGINS)


async def _node_or_none(cluster: NatsCluster, name: str) -> int | None:
    try:
        return await node_of(cluster, name)
    except LookupError:
        return None
