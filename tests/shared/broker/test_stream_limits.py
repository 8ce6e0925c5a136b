"""Every stream is bounded: JetStream holds the age, size and count limits the events
declare or the broker defaults to, on a real nats-server."""

from __future__ import annotations

import nats
import pytest
from nats.js.api import DiscardPolicy, StreamConfig
from prometheus_client import CollectorRegistry

from shared.broker import BrokerMetrics, BrokerSettings, NatsBroker
from shared.broker.events import event_spec
from shared.broker.settings import DAY_S, MIB
from shared.broker.streams import declare_stream, stream_limits
from shared.proto.auth.v1.auth_events_pb2 import TokenRevoked
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn, UserLoginFailed
from tests.support.nats import NatsServer


def test_failed_logins_are_kept_a_day_and_domain_events_a_week() -> None:
    event_spec(UserLoggedIn)
    event_spec(UserLoginFailed)
    settings = BrokerSettings()

    audit = stream_limits("AUDIT", settings)
    user = stream_limits("USER", settings)
    dlq = stream_limits("DLQ", settings)

    assert (audit.max_age_s, audit.max_bytes) == (DAY_S, 64 * MIB)
    assert (user.max_age_s, user.max_bytes, user.max_msgs) == (7 * DAY_S, 256 * MIB, 1_000_000)
    assert (dlq.max_age_s, dlq.max_bytes, dlq.max_msgs) == (30 * DAY_S, 64 * MIB, 100_000)


def test_an_operator_override_wins_and_events_of_a_stream_agree_on_its_limits() -> None:
    event_spec(UserLoginFailed)
    settings = BrokerSettings(
        stream_max_age_overrides={"AUDIT": 3600.0}, stream_max_bytes_overrides={"AUDIT": MIB}
    )

    assert stream_limits("AUDIT", settings).max_age_s == 3600.0
    assert stream_limits("AUDIT", settings).max_bytes == MIB
    declare_stream("AUDIT", "audit.user_locked")  # no limits of its own: takes the stream's
    declare_stream("AUDIT", "audit.user_unlocked", max_age_s=DAY_S)  # the same: fine
    with pytest.raises(ValueError, match="keeps events 86400 s, not 60 s"):
        declare_stream("AUDIT", "audit.user_renamed", max_age_s=60)
    with pytest.raises(ValueError, match="holds 67108864 bytes"):
        declare_stream("AUDIT", "audit.user_renamed", max_bytes=MIB)


@pytest.mark.integration
async def test_the_streams_created_on_nats_carry_their_limits(nats_server: NatsServer) -> None:
    for event in (UserLoggedIn, UserLoginFailed, TokenRevoked):
        event_spec(event)
    settings = BrokerSettings(url=nats_server.url, stream_max_bytes_overrides={"AUTH": MIB})
    broker = NatsBroker(settings, "svc", metrics=BrokerMetrics(CollectorRegistry()))
    await broker.start()  # sets up every known stream before it returns
    try:
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            configs: dict[str, StreamConfig] = {
                name: (await js.stream_info(name)).config
                for name in ("USER", "AUDIT", "AUTH", "DLQ")
            }
        finally:
            await nc.close()
    finally:
        await broker.stop()

    limits = {
        name: (config.max_age, config.max_bytes, config.max_msgs)
        for name, config in configs.items()
    }
    assert limits == {
        "USER": (7 * DAY_S, 256 * MIB, 1_000_000),
        "AUDIT": (DAY_S, 64 * MIB, 1_000_000),
        "AUTH": (7 * DAY_S, MIB, 1_000_000),
        "DLQ": (30 * DAY_S, 64 * MIB, 100_000),
    }
    assert {config.discard for config in configs.values()} == {DiscardPolicy.OLD}
