"""What a registered node is, and how it is stored: one JSON value per node."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServiceNode:
    """One running instance of a service, as other services find it in the registry."""

    name: str
    id: str
    address: str
    version: str = "0.0.0"
    # Fully qualified gRPC services this node serves, e.g. "user.v1.UserService".
    endpoints: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def new(
        cls,
        name: str,
        address: str,
        *,
        version: str,
        endpoints: tuple[str, ...] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> ServiceNode:
        """A node for a server starting now: a fresh id, and `registered_at` in its metadata
        (wall clock, unix seconds) for views of the system."""
        return cls(
            name=name,
            id=f"{name}-{uuid.uuid4().hex[:12]}",
            address=address,
            version=version,
            endpoints=endpoints,
            metadata={**(metadata or {}), "registered_at": f"{time.time():.3f}"},
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "id": self.id,
                "address": self.address,
                "version": self.version,
                "endpoints": list(self.endpoints),
                "metadata": dict(self.metadata),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ServiceNode:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            name=str(data["name"]),
            id=str(data["id"]),
            address=str(data["address"]),
            version=str(data.get("version", "0.0.0")),
            endpoints=tuple(str(e) for e in data.get("endpoints", ())),
            metadata={str(k): str(v) for k, v in dict(data.get("metadata", {})).items()},
        )


def node_key(prefix: str, service: str, node_id: str) -> str:
    return f"{service_prefix(prefix, service)}{node_id}"


def service_prefix(prefix: str, service: str) -> str:
    return f"{prefix.rstrip('/')}/{service}/"
