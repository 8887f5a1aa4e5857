"""The one JSON parser for request bodies: API bodies, multipart JSON fields, webhook updates.

Why not plain `json.loads`: it accepts `NaN` and `Infinity` and turns `1e309` into inf (a price
of infinity then breaks the store), a body nested 100,000 levels deep raises RecursionError (a
500 with tracebacks), and a 20 MB body parsed on the event loop stalls every other request.
Here numbers must be finite and integers fit in 64 bits, nesting stops at `MAX_DEPTH` levels,
and bodies above `OFF_LOOP_BYTES` are parsed on a worker thread. That thread does not make a
big parse free: `json.loads` holds the GIL, so the loop still waits while it runs. What bounds
the cost is the body limits (bots/api/limits.py): anonymous routes take a few KB of JSON, and
only keyed writes (key checked before the body is read) may send megabytes.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import Any

#: deepest nesting accepted (a product with `extra` is about 4 levels, a Telegram update about 10)
MAX_DEPTH = 32
#: bodies at least this large are parsed off the event loop
OFF_LOOP_BYTES = 64 * 1024
_INT_RANGE = (-(2**63), 2**63 - 1)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")


class JsonBodyError(ValueError):
    """A body that is not JSON this server accepts; the message says why, for the client."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonBodyError(f"the number {text[:30]} is out of range (numbers must be finite)")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20:
        raise JsonBodyError("an integer is out of range (at most 64 bits)")
    value = int(text)
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise JsonBodyError(f"the integer {text} is out of range (at most 64 bits)")
    return value


def _refuse_constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a number JSON allows (numbers must be finite)")


def nests_deeper_than(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether valid JSON text nests deeper than `limit`: strings removed, then one level of empty
    pairs peeled off per pass (C-speed string work, no walk over the parsed objects)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):
        if not brackets:
            return False
        brackets = _EMPTY_PAIR.sub("", brackets)
    return bool(brackets)


def parse_json(raw: bytes | str) -> Any:
    """Parse a body; raises `JsonBodyError` naming what is wrong (never RecursionError)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError:
        raise JsonBodyError("not valid JSON (not UTF-8 text)") from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except JsonBodyError:
        raise
    except RecursionError:  # the C parser stops at the interpreter's recursion limit (about 1,000 levels)
        raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        reason = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "not JSON"
        )
        raise JsonBodyError(f"not valid JSON ({reason})") from None
    if nests_deeper_than(text):  # after parsing: the text is valid JSON, so the string pattern is linear
        raise JsonBodyError(f"nested deeper than {MAX_DEPTH} levels")
    return value


async def parse_json_async(raw: bytes | str) -> Any:
    """`parse_json`, on a worker thread when the body is large (the event loop keeps serving)."""
    if len(raw) < OFF_LOOP_BYTES:
        return parse_json(raw)
    return await asyncio.to_thread(parse_json, raw)
