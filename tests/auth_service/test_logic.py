"""Tokens: signed, expiring, unique, revocable."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jwt
import pytest

from auth_service.errors import TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_REVOKED
from auth_service.logic import TokenLogic
from auth_service.repository import MemoryRevocationStore
from shared.errors import Reason, ServiceError

SECRET = "a-test-secret-that-is-long-enough-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def tokens(ttl_s: int = 60, secret: str = SECRET) -> TokenLogic:
    return TokenLogic(secret, "test-issuer", ttl_s, MemoryRevocationStore())


async def test_a_token_carries_the_user_and_validates() -> None:
    logic = tokens()
    issued = logic.make_token(10001, "micro")

    claims = await logic.validate(issued.token)

    assert (claims.user_id, claims.user_name) == (10001, "micro")
    assert claims.expires_at - claims.issued_at == 60
    assert claims.token_id == issued.claims.token_id


def test_every_token_has_its_own_id() -> None:
    logic = tokens()

    assert logic.make_token(1, "a").claims.token_id != logic.make_token(1, "a").claims.token_id


async def test_an_expired_token_is_refused_as_expired() -> None:
    logic = tokens(ttl_s=-10)
    issued = logic.make_token(10001, "micro")

    with pytest.raises(ServiceError) as caught:
        await logic.validate(issued.token)

    assert caught.value.reason == TOKEN_EXPIRED


async def test_a_token_expires_when_its_ttl_has_passed_on_the_clock() -> None:
    now = [1_900_000_000.0]
    logic = TokenLogic(SECRET, "test-issuer", 60, MemoryRevocationStore(), clock=lambda: now[0])
    issued = logic.make_token(10001, "micro")

    now[0] += 59
    still_valid = await logic.validate(issued.token)
    now[0] += 1
    with pytest.raises(ServiceError) as caught:
        await logic.validate(issued.token)

    assert still_valid.issued_at == 1_900_000_000
    assert caught.value.reason == TOKEN_EXPIRED


async def test_a_token_validated_before_is_refused_as_expired_once_it_expires() -> None:
    logic = tokens(ttl_s=1)
    issued = logic.make_token(10001, "micro")
    assert (await logic.validate(issued.token)).user_id == 10001  # now known to be valid
    await asyncio.sleep(issued.claims.expires_at - time.time() + 0.05)  # expiry: no event

    with pytest.raises(ServiceError) as caught:
        await logic.validate(issued.token)

    assert caught.value.reason == TOKEN_EXPIRED


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        tokens(secret="another-secret-that-is-long-enough-0123456789").make_token(1, "a").token,
        jwt.encode(
            {"sub": "1", "jti": "x", "iat": 0, "exp": 2**40, "iss": "test-issuer"}, "k" * 32
        ),
        jwt.encode({"sub": "1", "jti": "x"}, SECRET),
    ],
    ids=["garbage", "other-key", "forged", "missing-claims"],
)
async def test_tokens_not_signed_by_us_are_invalid(token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        await tokens().validate(token)

    assert caught.value.reason == TOKEN_INVALID


async def test_a_revoked_token_is_refused_as_revoked() -> None:
    logic = tokens()
    issued = logic.make_token(10001, "micro")

    await logic.revoke(issued.token)
    with pytest.raises(ServiceError) as caught:
        await logic.validate(issued.token)

    assert caught.value.reason == TOKEN_REVOKED


def test_a_missing_user_is_an_invalid_argument() -> None:
    with pytest.raises(ServiceError) as caught:
        tokens().make_token(0, "")

    assert caught.value.reason is Reason.INVALID_ARGUMENT


@pytest.mark.parametrize("sub", [str(2**70), "-1", "0"])
async def test_a_signed_token_with_an_id_out_of_range_is_invalid(sub: str) -> None:
    payload = {"sub": sub, "name": "x", "jti": "j", "iat": 1, "exp": 2**40, "iss": "test-issuer"}
    token = jwt.encode(payload, SECRET, algorithm="HS256")

    with pytest.raises(ServiceError) as caught:
        await tokens().validate(token)

    assert caught.value.reason == TOKEN_INVALID


OLD_KEY = "the-key-before-the-rotation-0123456789abcdef"
NEW_KEY = "the-key-after-the-rotation-0123456789abcdefg"


def keyed(signing: str, *accepted: str) -> TokenLogic:
    return TokenLogic(signing, "test-issuer", 60, MemoryRevocationStore(), accepted=accepted)


async def test_tokens_of_an_accepted_key_stay_valid_while_the_signing_key_changes() -> None:
    # 1. every replica accepts the next key; 2. it signs, the old one is accepted; 3. after
    # TOKEN_TTL_S the old one goes. Replicas at steps 1 and 2 accept each other's tokens.
    step1, step2, step3 = keyed(OLD_KEY, NEW_KEY), keyed(NEW_KEY, OLD_KEY), keyed(NEW_KEY)
    before, during = step1.make_token(1, "a").token, step2.make_token(2, "b").token

    assert (await step2.validate(before)).user_id == 1
    assert (await step1.validate(during)).user_id == 2
    assert (await step3.validate(during)).user_id == 2
    with pytest.raises(ServiceError) as caught:
        await step3.validate(before)
    assert caught.value.reason == TOKEN_INVALID


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_a_token_names_its_key_without_revealing_it() -> None:
    first, second = keyed(NEW_KEY, OLD_KEY).make_token(1, "a"), keyed(NEW_KEY).make_token(2, "b")

    assert kid(first.token) == kid(second.token)
    assert kid(first.token) != kid(keyed(OLD_KEY).make_token(1, "a").token)
    assert NEW_KEY not in kid(first.token)


async def test_a_token_made_before_tokens_named_their_key_is_checked_against_the_signing_key() -> (
    None
):
    payload = {"sub": "7", "name": "x", "jti": "j", "iat": 1, "exp": 2**40, "iss": "test-issuer"}
    unnamed = jwt.encode(payload, NEW_KEY, algorithm="HS256")

    assert (await keyed(NEW_KEY, OLD_KEY).validate(unnamed)).user_id == 7
    with pytest.raises(ServiceError) as caught:
        await keyed(OLD_KEY, NEW_KEY).validate(unnamed)
    assert caught.value.reason == TOKEN_INVALID


_WITHOUT_BINDINGS = """
    import asyncio, sys
    import auth_service.app, shared.entrypoint  # all that `python -m auth_service` imports
    from auth_service.logic import TokenLogic
    from auth_service.repository import MemoryRevocationStore

    logic = TokenLogic({secret!r}, "test-issuer", 60, MemoryRevocationStore())
    claims = asyncio.run(logic.validate(logic.make_token(7, "micro").token))
    bindings = [name for name in sys.modules if name.startswith("cryptography.hazmat")]
    print(claims.user_id, bindings)
"""


def test_auth_service_signs_and_checks_tokens_without_cryptographys_bindings() -> None:
    # PyJWT would load them (11 MB of the service's memory) for RSA and EC keys it never uses.
    code = textwrap.dedent(_WITHOUT_BINDINGS.format(secret=SECRET))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["7", "[]"]
