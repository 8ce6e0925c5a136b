"""Untrusted JSON: depth and numbers are bounded before Python's parser sees them."""

from __future__ import annotations

import pytest

from shared import jsonbody


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 100_000, "nested deeper than 32"),
        (b"{" * 33, "nested deeper than 32"),
        (b"1" * 5000, "a number of 5000 characters"),
        (b"[1e999]", "out of range"),
        (b"[Infinity]", "Infinity is not a JSON number"),
        (b"\xff", "not valid JSON"),
    ],
)
def test_hostile_json_is_refused_with_a_message(raw: bytes, says: str) -> None:
    with pytest.raises(jsonbody.JsonBodyError, match=says):
        jsonbody.loads(raw)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = b'{"a": "[[[[\\"[[[[", "b": [[1]]}'

    assert jsonbody.nesting_depth(raw) == 3
    assert jsonbody.loads(raw, max_depth=3) == {"a": '[[[["[[[[', "b": [[1]]}


def test_ordinary_numbers_parse() -> None:
    assert jsonbody.loads(b"[12345678901234567890, -1.5e10]") == [12345678901234567890, -1.5e10]
