"""Which etcd members a setting names: a list, one name, ETCD_ENDPOINTS over ETCD_ENDPOINT."""

from __future__ import annotations

import pytest

from shared.config.settings import ServiceSettings
from shared.registry import parse_endpoint, parse_endpoints


def test_a_list_names_every_member_and_a_bare_host_gets_the_client_port() -> None:
    assert parse_endpoints("http://a:2379, b:22379,c") == [("a", 2379), ("b", 22379), ("c", 2379)]
    assert parse_endpoints("[::1]:2379") == [("::1", 2379)]
    assert parse_endpoint("a:1,b:2") == ("a", 1)
    with pytest.raises(ValueError, match="no etcd endpoint"):
        parse_endpoints(" , ")


def test_etcd_endpoints_wins_over_etcd_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_ENDPOINT", "one:2379")
    assert ServiceSettings().etcd_endpoint == "one:2379"

    monkeypatch.setenv("ETCD_ENDPOINTS", "a:2379,b:2379,c:2379")
    assert ServiceSettings().etcd_endpoint == "a:2379,b:2379,c:2379"
