"""One metadata key of a call, as the server links and handlers read it."""

from __future__ import annotations

from typing import Any

from shared.metadata import metadata_value


class FakeContext:
    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        return self._metadata


def value(metadata: tuple[tuple[str, str | bytes], ...] | None, key: str) -> str | None:
    context: Any = FakeContext(metadata)
    return metadata_value(context, key)


def test_the_first_value_of_the_key_text_or_bytes() -> None:
    sent = (("x-a", "1"), ("x-b", b"two\xff"), ("x-a", "3"))
    assert value(sent, "x-a") == "1"
    assert value(sent, "x-b") == "two\ufffd"  # binary sent under a text key: replaced


def test_a_key_not_sent_or_no_metadata_at_all_is_none() -> None:
    assert value((("x-a", "1"),), "x-c") is None
    assert value(None, "x-a") is None
