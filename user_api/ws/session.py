"""One authenticated socket: frames in, calls run concurrently, answers and pushes out.

Every frame the server sends goes through one bounded queue drained by one task: answers
come back in any order, and a client that stops reading fills the queue and is
disconnected (1008) instead of growing the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from shared import jsonbody
from shared.errors import Reason, ServiceError
from user_api.ws.pushes import PUSHABLE, EventHub

log = logging.getLogger(__name__)

# Close codes: 4401, 4408 and 4429 like HTTP 401, 408 and 429; the others are RFC 6455's.
UNAUTHENTICATED = 4401
IDLE = 4408
TOO_MANY_SOCKETS = 4429
POLICY = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011

Call = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int
    max_in_flight: int
    idle_timeout_s: float
    send_queue: int
    recheck_s: float


class Session:
    def __init__(
        self,
        socket: WebSocket,
        *,
        user_id: int,
        call: Call,
        check: Check,
        hub: EventHub,
        limits: Limits,
    ) -> None:
        self._socket = socket
        self._user_id = user_id
        self._call = call
        self._check = check
        self._hub = hub
        self._limits = limits
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(limits.send_queue)
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._closing: tuple[int, str] | None = None
        self._stop = asyncio.Event()
        self._last_activity = time.monotonic()

    async def run(self) -> None:
        tasks = {
            asyncio.create_task(self._read(), name="ws-read"),
            asyncio.create_task(self._send(), name="ws-send"),
            asyncio.create_task(self._recheck(), name="ws-recheck"),
            asyncio.create_task(self._stop.wait(), name="ws-stop"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and (error := task.exception()) is not None:
                    # A bug, not the client's doing: said in the log, and as 1011, not 1000.
                    log.error("WebSocket session of user %d failed", self._user_id, exc_info=error)
                    self._close(INTERNAL_ERROR, "internal error")
        finally:
            self._hub.forget(self._emit)
            for task in [*tasks, *self._calls.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self._calls.values(), return_exceptions=True)
            if self._socket.application_state is WebSocketState.CONNECTED:
                code, reason = self._closing or (1000, "")
                with contextlib.suppress(Exception):  # the peer may be gone already
                    await self._socket.close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
        self._stop.set()

    def _emit(self, frame: dict[str, Any]) -> None:
        if self._stop.is_set():
            return
        try:
            self._outgoing.put_nowait(json.dumps(frame, separators=(",", ":")))
        except asyncio.QueueFull:
            log.info("disconnecting user %d's socket: it reads too slowly", self._user_id)
            self._close(POLICY, "reading too slowly")

    async def _send(self) -> None:
        while True:
            text = await self._outgoing.get()
            await self._socket.send_text(text)
            self._last_activity = time.monotonic()

    async def _read(self) -> None:
        while True:
            # Idle: nothing received, nothing sent and nothing running for the whole timeout.
            idle_for = time.monotonic() - self._last_activity
            left = self._limits.idle_timeout_s - idle_for
            if left <= 0 and not self._calls:
                self._close(IDLE, "idle")
                return
            try:
                async with asyncio.timeout(max(left, 0.1)):
                    message = await self._socket.receive()
            except TimeoutError:
                continue
            if message["type"] == "websocket.disconnect":
                self._stop.set()
                return
            self._last_activity = time.monotonic()
            text = message.get("text")
            raw = text.encode() if text is not None else message.get("bytes") or b""
            if len(raw) > self._limits.max_frame_bytes:
                self._close(TOO_BIG, f"frames are at most {self._limits.max_frame_bytes} bytes")
                return
            await self._frame(raw)

    async def _frame(self, raw: bytes) -> None:
        try:
            # Bounded: json's own parser recurses per level, and a deep frame ended the socket.
            frame = jsonbody.loads(raw)
        except jsonbody.JsonBodyError as error:
            self._error(None, Reason.INVALID_ARGUMENT, f"frame: {error}")
            return
        if not isinstance(frame, dict):
            self._error(None, Reason.INVALID_ARGUMENT, "a frame is a JSON object")
            return
        frame_id = frame.get("id")
        if not isinstance(frame_id, str) or not frame_id or len(frame_id) > 128:
            self._error(None, Reason.INVALID_ARGUMENT, "id: a string of 1 to 128 characters")
        elif "subscribe" in frame:
            await self._subscribe(frame_id, frame["subscribe"])
        elif "service" in frame or "method" in frame:
            self._start_call(frame_id, frame)
        else:
            self._error(frame_id, Reason.INVALID_ARGUMENT, "expected service/method or subscribe")

    def _start_call(self, frame_id: str, frame: dict[str, Any]) -> None:
        service, method, body = frame.get("service"), frame.get("method"), frame.get("body", {})
        if not isinstance(service, str) or not isinstance(method, str) or not service:
            self._error(frame_id, Reason.INVALID_ARGUMENT, "service and method: strings")
        elif not isinstance(body, dict):
            self._error(frame_id, Reason.INVALID_ARGUMENT, "body: a JSON object")
        elif frame_id in self._calls:
            self._error(frame_id, Reason.INVALID_ARGUMENT, f"id {frame_id!r} is already in flight")
        elif len(self._calls) >= self._limits.max_in_flight:
            self._error(frame_id, Reason.REJECTED, f"{self._limits.max_in_flight} calls in flight")
        else:
            task = asyncio.create_task(self._answer(frame_id, service, method, body))
            self._calls[frame_id] = task
            task.add_done_callback(lambda _: self._calls.pop(frame_id, None))

    async def _answer(self, frame_id: str, service: str, method: str, body: dict[str, Any]) -> None:
        try:
            reply = await self._call(service, method, body)
        except ServiceError as error:
            self._emit({"id": frame_id, "error": error.to_json()["error"]})
        except Exception:
            log.exception("WebSocket call %s.%s failed", service, method)
            self._error(frame_id, Reason.INTERNAL, "internal error")
        else:
            self._emit({"id": frame_id, "body": reply})

    async def _subscribe(self, frame_id: str, subject: Any) -> None:
        if subject not in PUSHABLE:
            offered = ", ".join(sorted(PUSHABLE))
            self._error(frame_id, Reason.INVALID_ARGUMENT, f"subscribe: one of {offered}")
            return
        await self._hub.listen(subject, self._user_id, self._emit)
        self._emit({"id": frame_id, "body": {"subscribed": subject}})

    async def _recheck(self) -> None:
        """A revoked or expired token ends the socket it opened, within `recheck_s`."""
        while True:
            await asyncio.sleep(self._limits.recheck_s)
            try:
                await self._check()
            except ServiceError as error:
                if error.http_status == 401:
                    self._close(UNAUTHENTICATED, error.message)
                    return
                # auth_service unreachable: keep the socket rather than drop every user

    def _error(self, frame_id: str | None, reason: str, message: str) -> None:
        self._emit({"id": frame_id, "error": {"reason": str(reason), "message": message}})
