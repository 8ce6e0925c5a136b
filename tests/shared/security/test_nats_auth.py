"""NATS users per service against a real nats-server running the generated configuration:
each service does its work through the kit's broker under its own user, and no more."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig
from prometheus_client import CollectorRegistry

from shared.broker import BrokerMetrics, BrokerSettings, Event, NatsBroker, events, streams
from shared.broker.events import event_spec, subject_of
from shared.broker.outbox import TransientError
from shared.broker.protocol import STREAM_HEADER
from shared.broker.subjects import consumer_name, inbox_prefix
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn
from shared.security.nats_auth import seed_path
from shared.security.roles import ServiceRole, discover
from tests.shared.broker.helpers import Collector, wait_until
from tests.support.eventually import eventually
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
# The test's own view of the server, beside the generated users: it checks what they did.
OPERATOR = {"user": "operator", "password": "operator-password-of-the-test"}
REFUSED_WITHIN_S = 1.0


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "nats_config", ROOT / "scripts" / "nats_config.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Path]]:
    path = _generator().write(tmp_path, 4222)
    config = json.loads(path.read_text())
    config["authorization"]["users"].append(OPERATOR)
    path.write_text(json.dumps(config))
    server = NatsServer(tmp_path / "nats", config=path)
    await server.start()
    try:
        yield server, tmp_path / "nats-users"
    finally:
        await server.stop()


class Connection:
    """A client as a service (its nkey, its inbox) and the errors the server reports to it."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    async def open(self, server: NatsServer, seeds: Path | None, service: str = "") -> Client:
        async def on_error(error: Exception) -> None:
            await self.errors.put(error)

        return await nats.connect(
            server.url,
            nkeys_seed=str(seed_path(seeds, service)) if seeds else None,
            inbox_prefix=inbox_prefix(service) if service else "_INBOX",
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
        )

    async def refused(self) -> str:
        error = await asyncio.wait_for(self.errors.get(), 5)
        assert "permissions violation" in str(error).lower(), error
        return str(error)


async def operator(server: NatsServer) -> Client:
    return await nats.connect(
        server.url, user=OPERATOR["user"], password=OPERATOR["password"], connect_timeout=2
    )


def as_in_its_process(role: ServiceRole, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the role's events declared, as in the service's own process: its broker sets up
    the streams of those events (shared.broker.streams), not of every event of the suite."""
    monkeypatch.setattr(events, "_specs", {})
    monkeypatch.setattr(streams, "_declared", {})
    monkeypatch.setattr(streams, "_declared_limits", {})
    for event in (*role.publishes, *role.consumes, *role.listens):
        event_spec(event)


def service_broker(
    secured: tuple[NatsServer, Path],
    name: str,
    role: ServiceRole,
    monkeypatch: pytest.MonkeyPatch,
    **settings: Any,
) -> NatsBroker:
    """The kit's broker of service `name`, as in its own process, under its NATS user."""
    server, seeds = secured
    as_in_its_process(role, monkeypatch)
    config = BrokerSettings.model_validate(
        {"url": server.url, "nkeys_seed": seed_path(seeds, name), "publish_timeout_s": 2} | settings
    )
    return NatsBroker(config, name, metrics=BrokerMetrics(CollectorRegistry()))


def test_seeds_are_private_and_reused(tmp_path: Path) -> None:
    first = _generator().write(tmp_path, 4222).read_text()
    seed = seed_path(tmp_path / "nats-users", "user_api")
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert _generator().write(tmp_path, 4222).read_text() == first


async def test_every_service_does_its_nats_work_under_its_own_user(
    secured: tuple[NatsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = secured
    roles = discover(ROOT)
    # What the kit's services send (user_api/logic.py, user_service's outbox in
    # repository.py, auth_service/logic.py): a role that leaves one out fails here. Services
    # made from the template (`micro new`) are driven below like these.
    publishes = {name: {subject_of(e) for e in role.publishes} for name, role in roles.items()}
    assert publishes["user_api"] == {"user.logged_in", "audit.user_login_failed"}
    assert publishes["user_service"] == {"user.created"}
    assert publishes["auth_service"] == {"auth.token_revoked"}
    heard = {name: Collector() for name in roles}
    brokers: list[NatsBroker] = []
    try:
        async with asyncio.timeout(60):
            for name, role in roles.items():  # set up one after the other, then all run
                broker = service_broker(secured, name, role, monkeypatch)
                brokers.append(broker)
                await broker.start()
                assert broker.connected
                for event in role.consumes:
                    await broker.subscribe(event, heard[name], queue=name)
                for event in role.listens:
                    queue = f"{name}_{uuid.uuid4().hex[:8]}"
                    await broker.subscribe(event, heard[name], queue=queue, durable=False)
            for broker, role in zip(brokers, roles.values(), strict=True):
                for event in role.publishes:
                    spec = event_spec(event)
                    data = event(event_id=uuid.uuid4().hex).SerializeToString()
                    # Refused, it would never be acknowledged: publish_now would time out.
                    await broker.publish_now(
                        spec.subject, data, headers={STREAM_HEADER: spec.stream}
                    )
            for name, role in roles.items():
                wanted = {event_spec(event).subject for event in (*role.consumes, *role.listens)}
                await heard[name].wait_for(len(wanted))
                assert {event.subject for event in heard[name].events} == wanted

            admin = await operator(server)
            try:
                js = admin.jetstream(timeout=5)
                for name, role in roles.items():
                    for event in role.consumes:  # pulled and acked under the service's user
                        spec = event_spec(event)
                        consumer = consumer_name(name, spec.subject)
                        info = await eventually(
                            functools.partial(js.consumer_info, spec.stream, consumer),
                            lambda found: found.num_ack_pending == 0,
                        )
                        assert info.delivered.stream_seq >= 1
                    for event in role.publishes:
                        spec = event_spec(event)
                        stored = await js.get_last_msg(spec.stream, spec.subject)
                        assert stored.subject == spec.subject
                assert (await js.stream_info("DLQ")).config.subjects == ["dlq.>"]
            finally:
                await admin.close()
    finally:
        await asyncio.gather(*(broker.stop() for broker in brokers))


async def test_an_event_its_consumer_cannot_handle_is_dead_lettered_under_its_user(
    secured: tuple[NatsServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = secured
    roles = discover(ROOT)
    failures = Collector()

    async def failing(event: Event) -> None:
        await failures(event)
        raise RuntimeError("cannot record this login")

    def broker_of(name: str, **settings: Any) -> NatsBroker:
        return service_broker(secured, name, roles[name], monkeypatch, **settings)

    brokers: list[NatsBroker] = []
    try:
        async with asyncio.timeout(30):
            consumer = broker_of("user_service", max_deliver=2, nak_delay_s=0.05)
            brokers.append(consumer)
            await consumer.start()
            await consumer.subscribe(UserLoggedIn, failing, queue="user_service")
            publisher = broker_of("user_api")
            brokers.append(publisher)
            await publisher.start()
            login = UserLoggedIn(event_id=uuid.uuid4().hex, user_id=7)
            spec = event_spec(UserLoggedIn)
            await publisher.publish_now(
                spec.subject, login.SerializeToString(), headers={STREAM_HEADER: spec.stream}
            )
            await failures.wait_for(2)  # delivered, nak'd, delivered again, then given up

            admin = await operator(server)
            try:
                js = admin.jetstream(timeout=5)
                dead = await eventually(
                    functools.partial(js.stream_info, "DLQ"), lambda i: i.state.messages == 1
                )
                assert dead.config.subjects == ["dlq.>"]
                letter = await js.get_last_msg("DLQ", "dlq.user.logged_in")
                assert letter.headers is not None
                assert letter.headers["Dlq-Queue"] == "user_service"
                assert "cannot record this login" in letter.headers["Dlq-Error"]
                settled = await js.consumer_info(
                    "USER", consumer_name("user_service", spec.subject)
                )
                assert settled.num_ack_pending == 0  # terminated, not left to come back
            finally:
                await admin.close()
    finally:
        await asyncio.gather(*(broker.stop() for broker in brokers))


async def test_a_service_may_not_delete_read_or_tap_what_is_not_its_own(
    secured: tuple[NatsServer, Path],
) -> None:
    server, seeds = secured
    user_api, auth_service, user_service = Connection(), Connection(), Connection()
    api = await user_api.open(server, seeds, "user_api")
    auth = await auth_service.open(server, seeds, "auth_service")
    users = await user_service.open(server, seeds, "user_service")
    try:
        # Set up as the services do: the stream of logins, with one stored.
        await api.jetstream().add_stream(name="USER", subjects=["user.>"])
        await api.jetstream().publish("user.logged_in", b"a login", timeout=5)

        with pytest.raises(nats.errors.TimeoutError):
            await auth.jetstream(timeout=REFUSED_WITHIN_S).delete_stream("USER")
        assert '"$js.api.stream.delete.user"' in await auth_service.refused()

        snoop = ConsumerConfig(name="snoop", filter_subject="user.logged_in")
        with pytest.raises(nats.errors.TimeoutError):
            await auth.jetstream(timeout=REFUSED_WITHIN_S).add_consumer("USER", config=snoop)
        await auth_service.refused()

        with pytest.raises(nats.errors.TimeoutError):
            await api.jetstream(timeout=REFUSED_WITHIN_S).get_msg("USER", 1)
        await user_api.refused()

        # user_service pulls logins through its consumer: no live copy of each one.
        await users.subscribe("user.logged_in")
        assert '"user.logged_in"' in await user_service.refused()
        # Nor anyone's replies: each service reads its own inbox only.
        await api.subscribe("_INBOX.>")
        await user_api.refused()
        await api.subscribe(f"{inbox_prefix('user_service')}.>")
        await user_api.refused()

        admin = await operator(server)
        try:
            state = (await admin.jetstream(timeout=5).stream_info("USER")).state
            assert state.messages == 1
        finally:
            await admin.close()
    finally:
        for connection in (api, auth, users):
            await connection.close()


async def test_an_event_outside_its_role_is_refused_and_the_log_says_so(
    secured: tuple[NatsServer, Path],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role = discover(ROOT)["auth_service"]
    broker = service_broker(
        secured, "auth_service", role, monkeypatch, publish_timeout_s=REFUSED_WITHIN_S
    )
    await broker.start()
    try:
        with caplog.at_level(logging.ERROR, logger="shared.broker.nats"):
            # On its own stream, but not an event its role declares (as user.created was
            # not in user_service's): never acknowledged, so the outbox keeps it.
            with pytest.raises(TransientError):
                await broker.publish_now(
                    "auth.token_issued", b"undeclared", headers={STREAM_HEADER: "AUTH"}
                )
            # nats-py reports the server's refusal in lower case.
            await wait_until(lambda: 'publish to "auth.token_issued"' in caplog.text)
        (refusal,) = caplog.messages
        assert refusal.startswith("NATS refused auth_service")
        assert "ROLE" in refusal
    finally:
        await broker.stop()


async def test_only_user_api_may_publish_user_logged_in(
    secured: tuple[NatsServer, Path],
) -> None:
    server, seeds = secured
    listener = await Connection().open(server, seeds, "user_api")
    received = await listener.subscribe("user.logged_in")
    forger = Connection()
    forging = await forger.open(server, seeds, "auth_service")
    genuine = await Connection().open(server, seeds, "user_api")
    try:
        await forging.publish("user.logged_in", b"forged")
        await forger.refused()

        await genuine.publish("user.logged_in", b"genuine")
        # The forged message was dropped by the server before the genuine one was sent.
        message = await received.next_msg(timeout=5)
        assert message.data == b"genuine"
    finally:
        for connection in (listener, forging, genuine):
            await connection.close()


async def test_a_client_without_credentials_cannot_connect(
    secured: tuple[NatsServer, Path],
) -> None:
    server, _ = secured
    with pytest.raises((nats.errors.Error, OSError)) as refused:
        await Connection().open(server, None)
    assert "authorization" in str(refused.value).lower()


def test_a_service_that_imports_its_role_does_not_load_nkeys() -> None:
    # Roles are read by every service's settings; only provisioning makes keys.
    code = (
        "import sys, user_service.settings, shared.security.roles\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('nkeys', 'nacl')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
