"""The kit is a library: a generated service publishes and consumes an event of its own,
and returns an error reason of its own, without a change to `shared/` outside
`shared/proto/` (where its contract lives).

In a copy of the project: `micro new service order` (which already has an event,
`order.created`, and a reason, ORDER_TOO_LARGE, of its own), then what a user writes by
hand beside them (the event `order.placed` in its proto, `make proto`, the reason
OUT_OF_STOCK, the logic that raises it and publishes the event, a subscriber, and
tests, and the event in its NATS role). The kit's files are hashed before and after; the
service's tests, which use a real NATS, must pass, and so must the project's test of each
service's NATS user.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.project_copy import copy_project, kit_files, micro, pytest_in, run

pytestmark = pytest.mark.integration

EVENT = """
// Published when an order is placed.
message OrderPlaced {
  option (micro.v1.event) = {subject: "order.placed", stream: "ORDER"};
  string event_id = 1;
  string order_id = 2;
  int32 quantity = 3;
}
"""

# Added to order/errors.py, below the template's own reason.
ERRORS = """

OUT_OF_STOCK = declare_reason("OUT_OF_STOCK", grpc.StatusCode.FAILED_PRECONDITION, http_status=409)
"""

SUBSCRIBER = '''"""What order does with its own events: here, it keeps the placed orders' ids."""

from shared.broker import Event
from shared.broker.events import decode
from shared.proto.order.v1.order_pb2 import OrderPlaced


class PlacedOrders:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def on_placed(self, event: Event) -> None:
        self.ids.append(decode(event, OrderPlaced).order_id)
'''

TESTS = '''"""order's own event and reason: on a real NATS, and across the wire to a caller."""

import asyncio

import nats
import pytest

from order.app import add_to
from order.logic import OrderLogic
from order.repository import InMemoryOrderRepository
from order.subscribers import PlacedOrders
from shared.broker import BrokerSettings, MemoryBroker, NatsBroker
from shared.errors import ServiceError
from shared.proto.order.v1 import order_pb2
from shared.proto.order.v1.order_pb2 import OrderPlaced
from shared.testing import InProcess
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration


async def test_order_placed_is_published_and_consumed_on_a_real_nats(
    nats_server: NatsServer,
) -> None:
    broker = NatsBroker(BrokerSettings(url=nats_server.url), "order")
    await broker.start()
    placed = PlacedOrders()
    handled = asyncio.Event()

    async def on_placed(event):  # type: ignore[no-untyped-def]
        await placed.on_placed(event)
        handled.set()

    try:
        await broker.subscribe(OrderPlaced, on_placed, queue="order")
        order = await OrderLogic(InMemoryOrderRepository(), events=broker).create("a book", 2)
        async with asyncio.timeout(10):
            await handled.wait()
    finally:
        await broker.stop()

    assert placed.ids == [order.id]  # order.created, on the same stream, is not order.placed
    connection = await nats.connect(nats_server.url)
    try:
        stream = await connection.jetstream().stream_info("ORDER")
    finally:
        await connection.close()
    assert stream.config.subjects == ["order.>"]
    assert stream.state.messages == 2  # the template's order.created, then order.placed


async def test_out_of_stock_reaches_a_grpc_caller_with_its_reason(
    in_process: InProcess,
) -> None:
    logic = OrderLogic(InMemoryOrderRepository(), events=MemoryBroker())
    await in_process.serve("order", add_to, logic)
    request = order_pb2.CreateOrderRequest(title="a lot", quantity=1_000)

    with pytest.raises(ServiceError) as refused:
        await in_process.client.call("order", "CreateOrder", request, timeout=5)

    assert refused.value.reason == "OUT_OF_STOCK"  # a string: the caller imports nothing
    assert refused.value.is_business
    assert "1000" in refused.value.message
'''


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


def test_a_new_service_has_its_own_event_and_reason_without_touching_the_kit(
    tmp_path: Path,
) -> None:
    root = copy_project(tmp_path)
    before = kit_files(root)
    made = micro(root, "new", "service", "order")
    assert made.returncode == 0, made.stdout + made.stderr

    proto = root / "shared/proto/order/v1/order.proto"
    # The template's own event already imports the kit's options.
    assert 'import "shared/proto/micro/v1/options.proto";' in proto.read_text()
    proto.write_text(proto.read_text() + EVENT)
    generated = run(root, sys.executable, "scripts/gen_proto.py")  # what `make proto` runs
    assert generated.returncode == 0, generated.stdout + generated.stderr

    errors = root / "order/errors.py"
    errors.write_text(errors.read_text() + ERRORS)
    (root / "order/subscribers.py").write_text(SUBSCRIBER)
    (root / "tests/order/test_own_event_and_reason.py").write_text(TESTS)
    logic = root / "order/logic.py"
    edit(logic, " import OrderCreated\n", " import OrderCreated, OrderPlaced\n")
    edit(logic, "import ORDER_TOO_LARGE\n", "import ORDER_TOO_LARGE, OUT_OF_STOCK\n")
    edit(logic, "MAX_TITLE = 200\n", "MAX_TITLE = 200\nSTOCK = 100\n")
    edit(
        logic,
        "        record = Order(",
        "        if quantity > STOCK:\n"
        '            raise ServiceError(OUT_OF_STOCK, f"{quantity} asked, {STOCK} in stock")\n'
        "        record = Order(",
    )
    edit(
        logic,
        "        await self._repository.add(record)\n",
        "        await self._repository.add(record)\n"
        "        if self._events is not None:\n"
        "            placed = OrderPlaced(order_id=record.id, quantity=quantity)\n"
        "            await publish_event(self._events, placed)\n",
    )

    # Its NATS user (make run, compose) may send and handle it once its role says so.
    settings = root / "order/settings.py"
    edit(settings, "(order_pb2.OrderCreated,)", "(order_pb2.OrderCreated, order_pb2.OrderPlaced)")
    edit(settings, "(order_pb2.OrderCreated,)", "(order_pb2.OrderCreated, order_pb2.OrderPlaced)")

    tests = pytest_in(root, "tests/order", "-rA")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    for name in ("order_placed_is_published_and_consumed", "out_of_stock_reaches_a_grpc_caller"):
        assert f"PASSED tests/order/test_own_event_and_reason.py::test_{name}" in tests.stdout
    users = pytest_in(root, "tests/shared/security/test_nats_auth.py", "-k", "every_service")
    assert users.returncode == 0, users.stdout + users.stderr
    assert kit_files(root) == before
