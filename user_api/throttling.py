"""Login throttling: which attempts are counted, under which keys, and how many.

Two sliding windows (shared/throttle.py) and a cap (shared/in_flight.py), all keyed by the
client's address (its /64 for IPv6: `shared.throttle.client_key`):

- per address, every attempt (`login_limit_per_address`, 20 a minute): one source trying
  many accounts (credential stuffing) is slowed down. OWASP's Credential Stuffing cheat sheet
  lists per-address limits as a defence that many legitimate users behind one NAT share, so
  the number is a person's worst day at a shared exit, not one person's.
- per (account, address), every attempt not (yet) proven good (`login_limit_per_account`,
  5 in 15 minutes): guessing one account's password. OWASP's Authentication cheat sheet asks
  for a threshold of failures within an observation window, and warns that locking the
  account itself lets anyone lock a user out; so the count is per account *and* address.
  An attempt is counted before it is verified (a parallel flood cannot slip in before its
  failures are recorded) and the count is cleared by a success.

The address's window is asked first: an attempt it refuses touches no account's window, so
a flood of made-up account names from one address costs at most the attempts that address
is allowed, not a window per name (200,000 of them held 75 MB for 15 minutes).

And a cap on each address's logins in progress (`login_in_flight_per_address`, 4): the
window lets an address start 20 attempts a minute, but sent at once they would hold 20 of
the 100 places user_api's breaker gives user_service's VerifyCredentials, and five
addresses would fill it: everyone's logins would be refused until it drained. With the
cap, that takes 25 addresses. An attempt past the cap is answered 429 (Retry-After: 1) and
counted in no window: it cost nothing.

Never per account alone: a flood against `micro` from one address leaves `micro` free to
log in from any other address. Distributed guessing from many addresses is slowed by each
address's own windows and by the Argon2 cost of every verification.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItem

from shared.in_flight import InFlight
from shared.throttle import Throttle, parse_limit

TOO_MANY_REQUESTS = "TOO_MANY_REQUESTS"


class TooManyAttemptsError(Exception):
    """Answered 429 with Retry-After; never counted as a failure of any service."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message


class LoginThrottle:
    def __init__(
        self, throttle: Throttle, per_address: str, per_account: str, in_flight_per_address: int
    ) -> None:
        self._throttle = throttle
        self._per_address: RateLimitItem = parse_limit(per_address)
        self._per_account: RateLimitItem = parse_limit(per_account)
        self._in_flight = InFlight(in_flight_per_address)

    def running(self, address: str) -> AbstractContextManager[None]:
        """Hold one of the address's places for a login in progress; raises
        TooManyAttemptsError when they are all taken. `address`: the client's key."""
        place = self._in_flight.try_hold(address)
        if place is None:
            raise TooManyAttemptsError(1, "too many logins in progress from this address")
        return place

    async def admit(self, user_name: str, address: str) -> None:
        """Count an attempt; raises TooManyAttemptsError when a window is full.
        `address`: the client's key (`client_key`)."""
        wait = await self._throttle.hit(self._per_address, "login-address", address)
        if wait is not None:
            raise TooManyAttemptsError(wait, "too many logins from this address; try later")
        account = user_name.casefold()
        wait = await self._throttle.hit(self._per_account, "login-account", account, address)
        if wait is not None:
            raise TooManyAttemptsError(wait, "too many failed logins for this account; try later")

    async def succeeded(self, user_name: str, address: str) -> None:
        """A good password vouches for this address: its earlier attempts stop counting."""
        await self._throttle.clear(
            self._per_account, "login-account", user_name.casefold(), address
        )


def install(app: FastAPI) -> None:
    @app.exception_handler(TooManyAttemptsError)
    async def _throttled(_: Request, error: TooManyAttemptsError) -> JSONResponse:
        return JSONResponse(
            {"error": {"reason": TOO_MANY_REQUESTS, "message": error.message}},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(error.retry_after)))},
        )
