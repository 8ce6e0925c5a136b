"""A node as servers make it and as the registry stores it."""

from __future__ import annotations

import time

from shared.registry import ServiceNode


def test_a_new_node_has_its_own_id_and_the_time_it_started_serving() -> None:
    before = time.time()
    first = ServiceNode.new(
        "order", "10.0.0.7:50051", version="1.2.0", metadata={"protocol": "http"}
    )
    second = ServiceNode.new("order", "10.0.0.8:50051", version="1.2.0")

    assert first.id.startswith("order-")
    assert second.id.startswith("order-")
    assert first.id != second.id
    assert first.metadata["protocol"] == "http"
    # Stored to the millisecond.
    assert before - 0.001 <= float(first.metadata["registered_at"]) <= time.time() + 0.001
    assert ServiceNode.from_json(first.to_json()) == first
