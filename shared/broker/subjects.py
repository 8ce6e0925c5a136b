"""NATS subject wildcards: `*` is one token, `>` one or more trailing tokens."""

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
