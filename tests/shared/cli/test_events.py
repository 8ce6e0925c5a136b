"""`micro streams` and `micro events` under the operator's NATS user, against a real
nats-server running the generated configuration: an operator reads what JetStream holds,
decoded with the project's contracts, and can change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig
from typer.testing import CliRunner, Result

from shared.broker import NatsBroker
from shared.broker.events import publish_event
from shared.broker.subjects import consumer_name
from shared.cli.events import DEFAULT_URL, DEV_SEED, NatsTarget
from shared.cli.main import app
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn, UserLoginFailed
from shared.security.nats_auth import OPERATOR_INBOX, seed_path
from shared.security.provision import nats_config
from shared.security.roles import discover
from tests.shared.security.test_nats_auth import service_broker
from tests.support import integration
from tests.support.nats import NatsServer
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[3]
FAILED_LOGINS = 3


@pytest.fixture
@integration.real_server
async def secured(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Path]]:
    """The generated users (services and the operator) on a real server."""
    server = NatsServer(tmp_path / "nats", config=nats_config(tmp_path, root=ROOT))
    await server.start()
    try:
        yield server, tmp_path / "nats-users"
    finally:
        await server.stop()


@pytest.fixture
async def stored(
    secured: tuple[NatsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[NatsBroker]:
    """user_api's events, as user_api publishes them; user_service's durable consumer."""
    roles = discover(ROOT)
    # One after the other: each sets up the streams of its own role's events only.
    consumer = service_broker(secured, "user_service", roles["user_service"], monkeypatch)
    publisher: NatsBroker | None = None
    try:
        await consumer.start()
        await consumer.subscribe(UserLoggedIn, _ignore, queue="user_service")
        publisher = service_broker(secured, "user_api", roles["user_api"], monkeypatch)
        await publisher.start()
        events = [
            *(UserLoginFailed(user_name=f"guess-{n}") for n in range(FAILED_LOGINS)),
            UserLoggedIn(user_id=7, user_name="micro"),
        ]
        for event in events:
            await publish_event(publisher, event)
        assert await publisher.flush(10)  # all of them acknowledged: stored
        yield consumer
    finally:
        if publisher is not None:
            await publisher.stop()
        await consumer.stop()


async def _ignore(_: object) -> None:
    return None


def operator_seed(seeds: Path) -> Path:
    """The seed `provision nats` makes for the default operator, beside the services'."""
    return seed_path(seeds.parent / "nats-operators", "operator")


async def micro(server: NatsServer, seeds: Path, *args: str) -> Result:
    return await asyncio.to_thread(
        run_micro, *args, "--nats", server.url, "--nkey", str(operator_seed(seeds))
    )


def run_micro(*args: str) -> Result:
    """The command in this process (it runs its own event loop: call it off the test's)."""
    return CliRunner().invoke(app, list(args), env={"NATS_URL": None, "MICRO_NATS_NKEY": None})


@pytest.mark.integration
async def test_an_operator_reads_the_streams_and_their_events_decoded(
    secured: tuple[NatsServer, Path], stored: NatsBroker
) -> None:
    server, seeds = secured
    listed = await micro(server, seeds, "streams")
    assert listed.exit_code == 0, listed.stderr
    streams = {stream["stream"]: stream for stream in json.loads(listed.stdout)}
    assert streams["AUDIT"]["messages"] == FAILED_LOGINS
    assert streams["USER"]["messages"] == 1
    backlog = streams["USER"]["consumers"][consumer_name("user_service", "user.logged_in")]
    assert set(backlog) == {"pending", "unacknowledged", "redelivered"}

    newest = await micro(server, seeds, "events", "AUDIT", "--last", "2")
    assert newest.exit_code == 0, newest.stderr
    lines = [json.loads(line) for line in newest.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [2, 3]  # the newest two, oldest first
    assert lines[-1]["type"] == "user.v1.UserLoginFailed"
    assert lines[-1]["event"]["userName"] == "guess-2"
    assert lines[-1]["subject"] == "audit.user_login_failed"
    assert lines[-1]["event_id"] == lines[-1]["event"]["eventId"]

    logins = await micro(server, seeds, "events", "USER", "--subject", "user.*")
    assert [json.loads(line)["event"]["userId"] for line in logins.stdout.splitlines()] == ["7"]

    missing = await micro(server, seeds, "events", "NOPE")
    assert (missing.exit_code, missing.stderr) == (
        1,
        "error: no such stream (micro streams lists them)\n",
    )
    invalid = await micro(server, seeds, "events", "not.a.stream")
    assert (invalid.exit_code, invalid.stderr) == (
        1,
        "error: nats: invalid stream name: 'not.a.stream'\n",
    )


@pytest.mark.integration
async def test_an_operator_can_change_nothing_and_takes_no_event(
    secured: tuple[NatsServer, Path], stored: NatsBroker
) -> None:
    server, seeds = secured
    refusals: asyncio.Queue[Exception] = asyncio.Queue()

    async def on_error(error: Exception) -> None:
        await refusals.put(error)

    operator: Client = await nats.connect(
        server.url,
        nkeys_seed=str(operator_seed(seeds)),
        inbox_prefix=OPERATOR_INBOX,
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        js = operator.jetstream(timeout=1)
        await operator.publish("audit.user_login_failed", b"forged")
        await operator.flush()
        refused = await asyncio.wait_for(refusals.get(), 5)
        assert "permissions violation" in str(refused).lower(), refused

        user_service = consumer_name("user_service", "user.logged_in")
        attempts: dict[str, Callable[[], Awaitable[object]]] = {
            "delete a stream": lambda: js.delete_stream("AUDIT"),
            "purge a stream": lambda: js.purge_stream("AUDIT"),
            "delete a message": lambda: js.delete_msg("AUDIT", 1),
            "create a consumer": lambda: js.add_consumer("AUDIT", ConsumerConfig()),
            "pull a service's events": lambda: operator.request(
                f"$JS.API.CONSUMER.MSG.NEXT.USER.{user_service}", b"1", timeout=1
            ),
            "delete a service's consumer": lambda: js.delete_consumer("USER", user_service),
        }
        for what, attempt in attempts.items():
            # The server drops what it refuses: no answer comes, and the client is told why.
            with pytest.raises(nats.errors.TimeoutError):
                await attempt()
            refused = await asyncio.wait_for(refusals.get(), 5)
            assert "permissions violation" in str(refused).lower(), (what, refused)

        # Nothing changed: every event is there, and user_service's consumer has its own.
        assert (await js.stream_info("AUDIT")).state.messages == FAILED_LOGINS
        assert (await js.consumer_info("USER", user_service)).num_ack_pending == 0
    finally:
        await operator.close()


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (("--nkey", "/nonexistent/operator.nk"), "no NATS seed at /nonexistent/operator.nk"),
        (("--timeout", "1"), "cannot reach NATS (--nats, NATS_URL)"),
    ],
)
def test_what_cannot_be_read_says_why_in_one_line(options: tuple[str, ...], says: str) -> None:
    nothing_there = f"nats://127.0.0.1:{free_port()}"
    answered = run_micro("events", "AUDIT", "--nats", nothing_there, *options)
    assert (answered.exit_code, answered.stderr) == (1, f"error: {says}\n")


def test_next_to_a_make_run_it_reads_that_nats_as_that_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert NatsTarget.of(None, None, 5) == NatsTarget(DEFAULT_URL, None, 5)

    nats_config(tmp_path / ".run", 14222, root=ROOT)  # what `make run` writes

    assert NatsTarget.of(None, None, 5) == NatsTarget("nats://127.0.0.1:14222", DEV_SEED, 5)
    mine = tmp_path / "mine.nk"
    assert NatsTarget.of("nats://nats:4222", mine, 5) == NatsTarget("nats://nats:4222", mine, 5)
