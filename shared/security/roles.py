"""Each service's role on NATS and etcd, declared next to the service, read by the generators.

A service's settings module declares what it does beyond the defaults::

    ROLE = ServiceRole(publishes=(OrderPlaced,), consumes=(PaymentTaken,))

`publishes`: events it sends (itself or through its outbox); `consumes`: events it handles
once per service (`app.subscribe`: a durable JetStream consumer of its own); `listens`:
events every replica hears as they happen (`broker.subscribe(..., durable=False)`). The
subjects and streams come from the events' own declarations (`(micro.v1.event)`, see
shared.broker.events), so the NATS permissions follow the contract; an event the role
leaves out is refused by the server (its publish never acknowledged, its subscription
empty). `etcd_writes` adds prefixes the service owns beyond its registry keys (a token
service's revocations, say).
scripts/nats_config.py and scripts/etcd_auth.py find every service package (a directory
with `__main__.py` and `settings.py`) and build a user for each, with this role or none.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from shared.broker.events import event_spec
from shared.broker.settings import BrokerSettings
from shared.security.etcd_auth import EtcdRole, Grant, service_role
from shared.security.nats_auth import NatsRole

_DEAD_LETTERS: str = BrokerSettings.model_fields["dlq_stream"].default


@dataclass(frozen=True)
class ServiceRole:
    publishes: tuple[type[Message], ...] = ()
    consumes: tuple[type[Message], ...] = ()
    listens: tuple[type[Message], ...] = ()
    etcd_writes: tuple[str, ...] = ()

    def nats(self, name: str) -> NatsRole:
        published = [event_spec(event) for event in self.publishes]
        consumed = [event_spec(event) for event in self.consumes]
        heard = [event_spec(event) for event in self.listens]
        # A service sets up the stream of every event it reads (shared.broker.streams),
        # and the dead-letter stream.
        streams = sorted({spec.stream for spec in (*published, *consumed, *heard)})
        return NatsRole(
            name,
            publishes=tuple(spec.subject for spec in published),
            consumes=tuple((spec.stream, spec.subject) for spec in consumed),
            listens=tuple(spec.subject for spec in heard),
            streams=(*streams, _DEAD_LETTERS),
        )

    def etcd(self, name: str) -> EtcdRole:
        return service_role(name, extra=[Grant(key, write=True) for key in self.etcd_writes])


def service_packages(root: Path) -> list[str]:
    """The service packages in `root`: directories with `__main__.py` and `settings.py`."""
    return sorted(
        path.name
        for path in root.iterdir()
        if (path / "__main__.py").is_file() and (path / "settings.py").is_file()
    )


def discover(root: Path) -> dict[str, ServiceRole]:
    """Each service package's declared ROLE (an empty role when it declares none)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    roles = {}
    for name in service_packages(root):
        module = importlib.import_module(f"{name}.settings")
        role = getattr(module, "ROLE", ServiceRole())
        if not isinstance(role, ServiceRole):
            raise TypeError(f"{name}.settings.ROLE is not a ServiceRole")
        roles[name] = role
    return roles
