"""NATS subjects: wildcards (`*` is one token, `>` one or more trailing tokens), and the
names a service's own subjects take (its inboxes, its durable consumers), which its NATS
permissions (shared.security.nats_auth) are written against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def covers(outer: str, inner: str) -> bool:
    """True when every subject matched by `inner` (a literal: it matches) is matched by `outer`."""
    outer_tokens, inner_tokens = outer.split("."), inner.split(".")
    for index, token in enumerate(outer_tokens):
        if token == ">":
            return len(inner_tokens) > index
        if index >= len(inner_tokens):
            return False
        other = inner_tokens[index]
        if other == ">" or (token != "*" and (other == "*" or other != token)):
            return False
    return len(inner_tokens) == len(outer_tokens)


def is_valid(subject: str, *, wildcards: bool) -> bool:
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            return False
        if token in ("*", ">"):
            if not wildcards or (token == ">" and index != len(tokens) - 1):
                return False
        elif "*" in token or ">" in token:
            return False
    return True


def find_stream(streams: Mapping[str, Sequence[str]], subject: str) -> str | None:
    """The stream whose subjects cover `subject` (a literal or a wildcard filter)."""
    for name, patterns in streams.items():
        if any(covers(pattern, subject) for pattern in patterns):
            return name
    return None


def inbox_prefix(service: str) -> str:
    """Where `service`'s replies come (requests, JetStream acks and pulls): `_INBOX_<name>`.

    An inbox of its own per service, so that its NATS user may subscribe to its own replies
    only; under the shared default, `_INBOX.>`, any service could read every other one's.
    """
    return f"_INBOX_{service}"


def consumer_name(queue: str, subject: str) -> str:
    """The durable consumer through which queue group `queue` pulls `subject`."""
    token = subject.replace(".", "_").replace("*", "any").replace(">", "all")
    return f"{queue}--{token}"
