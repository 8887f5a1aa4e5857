"""Text helpers every channel shares: cutting to a channel's limit (prices and words are `Wording`'s)."""

from __future__ import annotations

import re
from collections.abc import Callable

from visearch.core.domain import PRICE_THOUSANDS, price_text

THOUSANDS = PRICE_THOUSANDS  # a narrow no-break space: thousands in a price never wrap
ELLIPSIS = "…"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: most emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


_RUNS_OF_SPACES = re.compile(r"[ \t\r\f\v\u2028\u2029]+")


def _collapse(line: str) -> str:
    """Runs of ordinary spaces become one; no-break spaces (in prices: `SEK 12.50`, `1 234`) stay."""
    return _RUNS_OF_SPACES.sub(" ", line).strip(" ")


def cut(text: str, limit: int, *, length: Callable[[str], int] = len, keep_lines: bool = False) -> str:
    """Cut to `limit` (as `length` counts) with an ellipsis, at a word boundary when one is near.
    Runs of spaces collapse; line breaks stay only with `keep_lines`."""
    if keep_lines:
        text = "\n".join(_collapse(line) for line in text.splitlines())
    else:
        text = _collapse(text.replace("\n", " "))
    if length(text) <= limit:
        return text
    budget = limit - length(ELLIPSIS)
    out: list[str] = []
    used = 0
    for ch in text:
        size = length(ch)
        if used + size > budget:
            break
        out.append(ch)
        used += size
    kept = "".join(out)
    space = kept.rfind(" ")
    if space > limit * 0.6:
        kept = kept[:space]
    return kept.rstrip(" ,.;:-\n") + ELLIPSIS


def is_web_url(url: str | None) -> bool:
    """An http(s) link a messenger can open (and not absurdly long)."""
    return bool(url) and str(url).startswith(("http://", "https://")) and len(str(url)) <= 2048


__all__ = ["ELLIPSIS", "THOUSANDS", "cut", "is_web_url", "price_text", "utf16_len"]
