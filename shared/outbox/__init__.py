"""A transactional outbox: events written in the same transaction as the change.

A service with a database does not publish an event it causes; it writes it, in the
transaction that makes the change, to an outbox table, and a relay publishes the rows
afterwards. Either both the change and its event are committed or neither is, and a
crash between the commit and the publish loses nothing (the relay finds the row)::

    class OutboxRow(OutboxColumns, Base):       # the service's table, in its sql/ too
        __tablename__ = "outbox"

    async with sessions() as session:           # the change and its event, one commit
        session.add(order)
        stage_event(session, OutboxRow, OrderPlaced(order_id=...))
        await session.commit()

    app.add(OutboxRelay(sessions, OutboxRow, app.runtime.broker))   # start/stop part

Delivery is at least once: the relay deletes a row after JetStream acked it, and a row
published twice (a crash between the ack and the delete) keeps its event id, which
JetStream's duplicate window drops.
"""

from shared.outbox.relay import OutboxRelay
from shared.outbox.table import OutboxColumns, stage_event

__all__ = ["OutboxColumns", "OutboxRelay", "stage_event"]
