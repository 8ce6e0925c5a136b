"""What the client needs to know of a method, read once from its protobuf descriptor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions
from google.protobuf.message import Message

from shared.errors import Reason, ServiceError

# Reads and idempotent writes may be retried on another node; see `idempotency_level`
# in the .proto files (NO_SIDE_EFFECTS or IDEMPOTENT).
_RETRYABLE_LEVELS = frozenset({MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT})


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str  # "/user.v1.UserService/VerifyCredentials"
    method: str  # "VerifyCredentials"
    retryable: bool
    serialize: Callable[[Any], bytes]
    deserialize: Callable[[bytes], Any]

    @classmethod
    def from_descriptor(cls, method: MethodDescriptor) -> Endpoint:
        from google.protobuf import message_factory

        response_type = message_factory.GetMessageClass(method.output_type)
        return cls(
            path=f"/{method.containing_service.full_name}/{method.name}",
            method=method.name,
            retryable=method.GetOptions().idempotency_level in _RETRYABLE_LEVELS,
            serialize=_serialize,
            deserialize=response_type.FromString,
        )

    @classmethod
    def from_path(
        cls,
        path: str,
        serialize: Callable[[Any], bytes] | None,
        deserialize: Callable[[bytes], Any] | None,
    ) -> Endpoint:
        """For generated stubs, which hand the channel a path and their (de)serializers."""
        service, _, method = path.strip("/").partition("/")
        try:
            descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
            retryable = descriptor.GetOptions().idempotency_level in _RETRYABLE_LEVELS
        except KeyError:
            retryable = False
        return cls(
            path=path,
            method=method,
            retryable=retryable,
            serialize=serialize or _identity,
            deserialize=deserialize or _identity,
        )


def resolve(request: Message, method: str) -> Endpoint:
    """The method named `method` whose input is `request`'s type, in the request's .proto file."""
    message = request.DESCRIPTOR
    for service in message.file.services_by_name.values():
        candidate = service.methods_by_name.get(method)
        if candidate is not None and candidate.input_type is message:
            return Endpoint.from_descriptor(candidate)  # type: ignore[arg-type]
    raise ServiceError(
        Reason.INVALID_ARGUMENT, f"no method {method}({message.full_name}) in {message.file.name}"
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _identity(value: Any) -> Any:
    return value
