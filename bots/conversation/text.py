"""Text helpers every channel shares: prices, cutting to a channel's limit, a product photo's URL."""

from __future__ import annotations

from collections.abc import Callable

from visearch.core.domain import Card

#: a narrow no-break space: thousands in a price never wrap onto two lines
THOUSANDS = "\u202f"
ELLIPSIS = "…"


def price_text(price: float | None, currency: str | None = None) -> str:
    """`27.78 SEK`, `12 EUR`, `1 234.50`; empty without a price. The one price format of every
    channel (and of the CLI, which may import it)."""
    if price is None:
        return ""
    amount = f"{price:,.2f}".replace(",", THOUSANDS).removesuffix(".00")
    return f"{amount} {currency}".strip() if currency else amount


def card_price(card: Card) -> str:
    """The card's price with its currency."""
    return price_text(card.price, card.currency)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: most emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int, *, length: Callable[[str], int] = len, keep_lines: bool = False) -> str:
    """Cut to `limit` (as `length` counts) with an ellipsis, at a word boundary when one is near.
    Runs of spaces collapse; line breaks stay only with `keep_lines`."""
    if keep_lines:
        text = "\n".join(" ".join(line.split()) for line in text.splitlines())
    else:
        text = " ".join(text.split())
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


def image_url(card: Card, public_url: str | None) -> str | None:
    """A URL a platform can fetch the product photo from: the catalog's own URL, or our /media route."""
    if card.image and str(card.image).startswith(("http://", "https://")):
        return str(card.image)
    if card.image_file and public_url:
        return f"{public_url.rstrip('/')}/media/{card.point_id}"
    return None
