"""Sockets per user on one replica: refused past the limit, free again once given back."""

from __future__ import annotations

from user_api.ws.quota import SocketQuota


def test_one_socket_past_the_limit_is_refused_and_others_users_are_not_affected() -> None:
    quota = SocketQuota(per_user=2)

    assert [quota.take(7), quota.take(7), quota.take(7)] == [True, True, False]
    assert quota.take(8)


def test_a_socket_given_back_frees_its_place() -> None:
    quota = SocketQuota(per_user=1)
    assert quota.take(7)

    quota.give_back(7)

    assert quota.take(7)
    assert not quota.take(7)
