"""JSON from untrusted bodies, bounded before it is parsed.

Python's json recurses once per nesting level (deep input raises RecursionError, and a
handler that catches it broadly hides real bugs) and turns a digit string of any length
into an int (quadratic time; Python refuses beyond 4300 digits, with an obscure message).
So nesting is measured first, in C-speed passes over the text, and numbers are parsed
through hooks that refuse what no API field needs.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = b"[{]}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonBodyError(ValueError):
    """The body is not JSON this API accepts; the message says why, for the caller."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw`, brackets inside strings ignored."""
    brackets = _STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=0))


def _number(text: str, kind: type[int] | type[float]) -> int | float:
    if len(text) > MAX_NUMBER_CHARS:
        raise JsonBodyError(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS})")
    value = kind(text)
    if not math.isfinite(value):  # 1e999 is short, and a float of infinite size
        raise JsonBodyError(f"{text} is out of range")
    return value


def _constant(name: str) -> float:
    raise JsonBodyError(f"{name} is not a JSON number")


def loads(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw`, or raise JsonBodyError with a message fit for the caller."""
    if nesting_depth(raw) > max_depth:
        raise JsonBodyError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(
            raw,
            parse_int=lambda text: _number(text, int),
            parse_float=lambda text: _number(text, float),
            parse_constant=_constant,
        )
    except JsonBodyError:
        raise
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise JsonBodyError(f"body is not valid JSON: {error}") from None
