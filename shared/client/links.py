"""The kit's links of the client chain; `shared.client.chain` puts them in order.

Each is built once per route, with what it needs of the route resolved then, and is a
plain function where it has nothing to do after the call (no coroutine of its own).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.breaker import Command
from shared.client.call import Call, ClientMiddleware, Handler
from shared.client.metrics import ClientMetrics
from shared.client.route import Route
from shared.deadline import expires
from shared.errors import Reason, ServiceError
from shared.middleware import passthrough
from shared.selector import NodeState, Selector
from shared.tracing import (
    Tracing,
    annotate_breaker,
    client_span,
    mark_peer,
    mark_rejected,
    mark_short_circuited,
    mark_timeout,
)

log = logging.getLogger(__name__)


def tracing(tracing: Tracing, route: Route) -> ClientMiddleware:
    """One CLIENT span per call (its retries included), with the breaker's state and
    decision and the node called last; sends the span's context in the metadata."""
    if not tracing.enabled:
        return passthrough
    service, endpoint, command = route.service, route.endpoint, route.command

    def link(next: Handler) -> Handler:
        async def traced(call: Call) -> Any:
            with client_span(tracing, service, endpoint.method, endpoint.path, "") as (
                span,
                outgoing,
            ):
                if outgoing:
                    call.add_metadata(*outgoing)
                if not span.is_recording():
                    return await next(call)
                annotate_breaker(span, command.name, command.state)
                try:
                    return await next(call)
                except ServiceError as error:
                    _mark_breaker(span, command, call, error)
                    raise
                finally:
                    if call.node is not None:
                        mark_peer(span, call.node.node.address)

        return traced

    return link


def _mark_breaker(span: Any, command: Command, call: Call, error: ServiceError) -> None:
    if error.reason is Reason.CIRCUIT_OPEN:
        mark_short_circuited(span, command.name)
    elif error.reason is Reason.REJECTED:
        mark_rejected(span, command.name)
    elif error.reason is Reason.TIMEOUT:
        timeout = command.settings.timeout_ms / 1000
        budget = call.budget
        mark_timeout(span, command.name, timeout if budget is None else min(timeout, budget))


def metrics(metrics: ClientMetrics | None, route: Route) -> ClientMiddleware:
    """Count each call by the code the caller got, and time it."""
    if metrics is None:
        return passthrough
    labels = (route.service, route.endpoint.method)
    handled = metrics.handled
    ok = handled.labels(*labels, "OK")
    latency = metrics.latency.labels(*labels)
    clock = time.perf_counter

    def link(next: Handler) -> Handler:
        async def measured(call: Call) -> Any:
            started = clock()
            try:
                response = await next(call)
            except ServiceError as error:
                handled.labels(*labels, error.grpc_code.name).inc()
                raise
            else:
                ok.inc()
                return response
            finally:
                latency.observe(clock() - started)

        return measured

    return link


def deadline(next: Handler) -> Handler:
    """The call gives up at the caller's deadline or after its own timeout, whichever is
    first: `call.give_up`, read by the retry link for every attempt."""
    clock = time.monotonic

    def bounded(call: Call) -> Any:
        give_up = expires()
        if call.timeout is not None:
            mine = clock() + call.timeout
            if give_up is None or mine < give_up:
                give_up = mine
        call.give_up = give_up
        return next(call)

    return bounded


def retry(selector: Selector, route: Route, max_retries: int) -> ClientMiddleware:
    """Pick a node for each attempt. A retryable method (`Endpoint.retryable`) is tried
    again on another node after UNAVAILABLE (the node could not be reached, or said it
    cannot serve), OVERLOADED (it shed the call unstarted) or a timeout of the node itself
    (it never answered: a hung node, held against it by outlier ejection), at most
    `max_retries` times and while the deadline allows; never after a business error or a
    TIMEOUT the node answered (its own dependency was slow: another node would be too)."""
    service = route.service
    clock = time.monotonic

    def link(next: Handler) -> Handler:
        def once(call: Call) -> Any:
            call.node = selector.pick(service)
            give_up = call.give_up
            call.budget = None if give_up is None else give_up - clock()
            return next(call)

        if not route.endpoint.retryable or max_retries <= 0:
            return once

        async def retrying(call: Call) -> Any:
            node = call.node = selector.pick(service)  # no node at all: nothing to retry
            give_up = call.give_up
            call.budget = None if give_up is None else give_up - clock()
            try:
                return await next(call)
            except ServiceError as error:
                if not _worth_another_node(error, node):
                    raise
                last = error
            tried = [node.node.id]
            while len(tried) <= max_retries:
                budget = None if give_up is None else give_up - clock()
                if budget is not None and budget <= 0:
                    break
                try:
                    node = selector.pick(service, tried)
                except ServiceError:
                    break  # no other node
                log.info("retrying %s on %s after %s", route.command.name, node.node.id, last)
                call.node, call.budget = node, budget
                try:
                    return await next(call)
                except ServiceError as again:
                    if not _worth_another_node(again, node):
                        raise
                    last = again
                tried.append(node.node.id)
            raise last

        return retrying

    return link


def _worth_another_node(error: ServiceError, node: NodeState) -> bool:
    reason = error.reason
    if reason is Reason.UNAVAILABLE or reason is Reason.OVERLOADED:
        return True
    # The transport marks the node suspect when the deadline passed without its answer.
    return reason is Reason.TIMEOUT and node.suspect


def breaker(command: Command) -> ClientMiddleware:
    """Each attempt under the route's breaker: circuit, bulkhead and timeout. The timeout
    is handed to the node as the gRPC deadline, which cancels the call on both sides."""
    run = command.run

    def link(next: Handler) -> Handler:
        def guarded(call: Call) -> Any:
            def attempt(timeout: float) -> Any:
                call.attempt_timeout = timeout
                return next(call)

            return run(attempt, budget_s=call.budget, self_timed=True)

        return guarded

    return link
