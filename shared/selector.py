"""A watch-fed cache of nodes per service, and the strategies that pick one.

Picking never waits on the registry: it reads the last snapshot the watch delivered,
which is also what keeps calls flowing while etcd is unreachable. Only the very first
call to a service waits, once, for the first snapshot.

Outlier ejection (Envoy's consecutive gateway failures): a node whose calls fail at the
transport level or time out without its answer (`eject_after_failures` in a row) is
skipped for a while, doubling with each ejection; back from one, it is ejected again on
its first failure, until a success clears its record. If every node is ejected, the
ejected ones are tried rather than failing without trying.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from shared.errors import Reason, ServiceError
from shared.registry import Registry, ServiceNode

log = logging.getLogger(__name__)


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    LEAST_IN_FLIGHT = "least_in_flight"


@dataclass(slots=True, eq=False)
class NodeState:
    node: ServiceNode
    in_flight: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    # Set by any transport failure, cleared by the next success: the client reports a
    # success only then, so a healthy node costs one attribute read per call.
    suspect: bool = False


# A strategy is a factory of pickers, one per watched service (a picker may keep state,
# as round robin's turn); a picker chooses among two or more candidate nodes.
Picker = Callable[[Sequence[NodeState]], NodeState]
PickerFactory = Callable[[], Picker]


def round_robin() -> Picker:
    turns = itertools.count()

    def pick(nodes: Sequence[NodeState]) -> NodeState:
        return nodes[next(turns) % len(nodes)]

    return pick


def random_choice() -> Picker:
    return random.choice


def least_in_flight() -> Picker:
    """Power of two choices: nearly as good as the least loaded of all, without herding
    every caller onto the same node."""

    def pick(nodes: Sequence[NodeState]) -> NodeState:
        first, second = random.sample(nodes, 2)
        return first if first.in_flight <= second.in_flight else second

    return pick


STRATEGIES: dict[str, PickerFactory] = {
    Strategy.ROUND_ROBIN: round_robin,
    Strategy.RANDOM: random_choice,
    Strategy.LEAST_IN_FLIGHT: least_in_flight,
}


@dataclass
class _ServiceView:
    pick: Picker
    nodes: list[NodeState] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Selector:
    def __init__(
        self,
        registry: Registry,
        *,
        strategy: str | PickerFactory = Strategy.ROUND_ROBIN,
        eject_after_failures: int = 3,
        base_ejection_s: float = 5.0,
        max_ejection_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self.strategy = strategy
        # A name from STRATEGIES, or a factory of your own.
        self._pickers = STRATEGIES[strategy] if isinstance(strategy, str) else strategy
        self._eject_after = eject_after_failures
        self._base_ejection_s = base_ejection_s
        self._max_ejection_s = max_ejection_s
        self._clock = clock
        self._views: dict[str, _ServiceView] = {}
        self._on_change: list[Callable[[], None]] = []
        # No node is ejected before this time: until a node is, picking skips the filter.
        self._ejections_end = -math.inf

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of any watched service's nodes."""
        self._on_change.append(listener)

    def addresses(self) -> set[str]:
        """The addresses of every node of every watched service."""
        return {state.node.address for view in self._views.values() for state in view.nodes}

    async def wait_ready(self, service: str, timeout: float | None) -> bool:
        """Start watching `service` if needed; wait (bounded) for the first snapshot."""
        view = self._view(service)
        if not view.ready.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await view.ready.wait()
        return view.ready.is_set()

    def nodes(self, service: str) -> list[ServiceNode]:
        view = self._views.get(service)
        return [state.node for state in view.nodes] if view else []

    def states(self, service: str) -> list[NodeState]:
        """The nodes of `service` with their counters (in flight, failures, ejection)."""
        view = self._views.get(service)
        return list(view.nodes) if view else []

    def pick(self, service: str, exclude: Collection[str] = ()) -> NodeState:
        """A node of `service` not in `exclude` (node ids); raises UNAVAILABLE when none."""
        view = self._views.get(service)
        candidates = view.nodes if view is not None else []
        if exclude:
            candidates = [s for s in candidates if s.node.id not in exclude]
        if not candidates:
            raise ServiceError(Reason.UNAVAILABLE, f"no available node of {service}")
        if self._ejections_end > self._clock():
            now = self._clock()
            candidates = [s for s in candidates if s.ejected_until <= now] or candidates
        if len(candidates) == 1:
            return candidates[0]
        return view.pick(candidates)  # type: ignore[union-attr]

    def report(self, state: NodeState, *, transport_ok: bool) -> None:
        """Record whether the node answered a call (any status it chose) or failed it
        (unreachable, or no answer within the deadline), for outlier ejection."""
        if transport_ok:
            state.consecutive_failures = 0
            state.ejections = 0
            state.suspect = False
            return
        state.suspect = True
        state.consecutive_failures += 1
        # A node back from an ejection has not proven itself yet: one failure sends it back.
        if state.ejections or state.consecutive_failures >= self._eject_after:
            duration = min(self._base_ejection_s * 2**state.ejections, self._max_ejection_s)
            state.ejected_until = self._clock() + duration
            self._ejections_end = max(self._ejections_end, state.ejected_until)
            state.ejections += 1
            state.consecutive_failures = 0
            log.warning("ejecting %s for %.0f s after failures to answer", state.node.id, duration)

    async def stop(self) -> None:
        for view in self._views.values():
            if view.task is not None:
                view.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await view.task
        self._views.clear()

    def _view(self, service: str) -> _ServiceView:
        view = self._views.get(service)
        if view is None:
            view = self._views[service] = _ServiceView(self._pickers())
            view.task = asyncio.create_task(self._follow(service, view), name=f"watch-{service}")
        return view

    async def _follow(self, service: str, view: _ServiceView) -> None:
        async for snapshot in self._registry.watch(service):
            # Keep the per-node counters of nodes that stay, so ejections survive updates.
            known = {state.node.id: state for state in view.nodes}
            states = []
            for node in sorted(snapshot, key=lambda n: n.id):
                state = known.get(node.id)
                if state is None or state.node != node:
                    state = NodeState(node)
                states.append(state)
            view.nodes = states
            view.ready.set()
            log.debug("%s nodes: %s", service, [s.node.address for s in states])
            for listener in self._on_change:
                listener()
