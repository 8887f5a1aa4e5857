"""What the Telegram bot says, in one place, for both adapters (aiogram and python-telegram-bot).

Replies are plain data (`TextReply`, `PhotoReply`, `Button`): the adapters only translate them
into their framework's calls, so the two bots answer the same update identically. Everything is
HTML parse mode; every piece of catalog text goes through `escape` and is cut to Telegram's
limits *before* escaping, so a title with `<`, `&`, `*`, `_` or emoji never breaks a message.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from visearch.core.domain import Card, Facets, Filters
from visearch.core.query_syntax import describe_filters

PARSE_MODE = "HTML"
CAPTION_LIMIT = 1024  # characters after entity parsing (Bot API)
TEXT_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64  # bytes
CALLBACK_ANSWER_LIMIT = 200

MORE_LIKE_THIS = "more:"  # + point id (a 36-character uuid)
NEXT_PAGE = "page:"  # + cursor (12 characters)

TITLE_LIMIT = 200
DESCRIPTION_LIMIT = 300


@dataclass(frozen=True)
class Button:
    """An inline button: a callback (`callback_data`) or a link (`url`)."""

    text: str
    callback_data: str | None = None
    url: str | None = None


Keyboard = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class TextReply:
    """A message in HTML parse mode, with optional inline buttons."""

    text: str
    buttons: Keyboard = ()


@dataclass(frozen=True)
class PhotoReply:
    """A product card: a photo (local file or URL) with an HTML caption and inline buttons.

    `fallback` is sent instead when the photo cannot be sent (file gone, URL unreachable).
    """

    caption: str
    buttons: Keyboard
    photo_file: str | None = None
    photo_url: str | None = None
    fallback: TextReply = field(default_factory=lambda: TextReply(""))

    @property
    def photo_key(self) -> str:
        """What identifies the photo for the uploaded-file cache."""
        return self.photo_file or self.photo_url or ""


Reply = TextReply | PhotoReply


@dataclass(frozen=True)
class CallbackAnswer:
    """The answer to a button tap: a short notice (or none) and the messages to send."""

    notice: str | None = None
    replies: list[Reply] = field(default_factory=list)
    drop_page_button: bool = False


# --- text helpers --------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: most emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """Cut plain text to `limit` UTF-16 units at a word boundary when one is near, with an ellipsis."""
    text = " ".join(text.split())
    if utf16_len(text) <= limit:
        return text
    out = ""
    for ch in text:
        if utf16_len(out + ch) > limit - 1:
            break
        out += ch
    space = out.rfind(" ")
    if space > limit * 0.6:
        out = out[:space]
    return out.rstrip(" ,.;:-") + "…"


def escape(text: str) -> str:
    """Escape catalog text for HTML parse mode (`<`, `>`, `&` and quotes)."""
    return html.escape(text, quote=True)


def format_price(price: float | None, currency: str | None) -> str:
    """`27.78 SEK`, `12 EUR`; empty when the product has no price."""
    if price is None:
        return ""
    amount = f"{price:,.2f}".replace(",", "\u202f")
    amount = amount.removesuffix(".00")
    return f"{amount} {currency}".strip() if currency else amount


def _is_web_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("http://", "https://")) and len(str(url)) <= 2048


# --- cards -----------------------------------------------------------------------------------------


def card_caption(card: Card) -> str:
    """Title in bold, then price and category, then a short description; within the caption limit."""
    title = cut(card.title, TITLE_LIMIT)
    facts = " · ".join(p for p in (format_price(card.price, card.currency), card.category or "",
                                   "" if card.in_stock else "out of stock") if p)
    facts = cut(facts, 200)
    used = utf16_len(title) + utf16_len(facts) + 2
    description = cut(card.description, min(DESCRIPTION_LIMIT, CAPTION_LIMIT - used - 1)) if card.description else ""
    lines = [f"<b>{escape(title)}</b>"]
    if facts:
        lines.append(escape(facts))
    if description:
        lines.append(escape(description))
    return "\n".join(lines)


def card_buttons(card: Card, next_cursor: str | None = None) -> Keyboard:
    """'More like this' and 'Open in shop' for a card; a 'Show more' row when a next page exists."""
    row = []
    if len((MORE_LIKE_THIS + card.point_id).encode()) <= CALLBACK_DATA_LIMIT:
        row.append(Button("🔍 More like this", callback_data=MORE_LIKE_THIS + card.point_id))
    if _is_web_url(card.url):
        row.append(Button("🛒 Open in shop", url=card.url))
    rows: list[tuple[Button, ...]] = [tuple(row)] if row else []
    if next_cursor:
        rows.append((Button("Show more ▸", callback_data=NEXT_PAGE + next_cursor),))
    return tuple(rows)


def card_replies(cards: list[Card], next_cursor: str | None) -> list[Reply]:
    """One photo card per product; the last one carries the 'Show more' button."""
    replies: list[Reply] = []
    for i, card in enumerate(cards):
        buttons = card_buttons(card, next_cursor if i == len(cards) - 1 else None)
        caption = card_caption(card)
        fallback = TextReply(caption, buttons)
        if card.image_file or _is_web_url(card.image):
            replies.append(PhotoReply(caption, buttons, photo_file=card.image_file,
                                      photo_url=None if card.image_file else card.image, fallback=fallback))
        else:
            replies.append(fallback)
    return replies


def without_page_button(rows: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """A message's keyboard (as Bot API dicts) with the 'Show more' button removed (page was shown)."""
    kept = [[b for b in row if not str(b.get("callback_data") or "").startswith(NEXT_PAGE)] for row in rows]
    return [row for row in kept if row]


# --- texts -----------------------------------------------------------------------------------------


def start_text(shop_name: str) -> str:
    """/start and /help: what to send, in two short paragraphs."""
    return (
        f"👋 <b>{escape(shop_name)}</b> visual search.\n\n"
        "Send a <b>photo</b> of a product (or several photos in one album) and I will show the matching "
        "products from the catalogue. You can also type a few words, for example <i>green apple</i>.\n\n"
        "Narrow it down with filters in the text or the photo caption: "
        "<code>under 20</code>, <code>10-50</code>, <code>category:milk</code>, <code>brand:arla</code>, "
        "<code>#organic</code>, <code>in stock</code>. /filters shows what is available."
    )


def filters_text(facets: Facets, shown: int = 12) -> str:
    """/filters: the categories and brands with product counts, the price range, the syntax."""
    lines = [f"<b>{facets.products} products</b> in the catalogue."]

    def listing(title: str, values: dict[str, int], prefix: str) -> None:
        if not values:
            return
        items = [f"<code>{prefix}{escape(_quoted(v))}</code> ({n})" for v, n in list(values.items())[:shown]]
        more = f" and {len(values) - shown} more" if len(values) > shown else ""
        lines.append(f"\n<b>{title}</b>: " + ", ".join(items) + more)

    listing("Categories", facets.categories, "category:")
    listing("Brands", facets.brands, "brand:")
    listing("Tags", facets.tags, "#")
    listing("Colours", facets.colours, "colour:")
    if facets.price_min is not None and facets.price_max is not None:
        currency = f" {facets.currencies[0]}" if len(facets.currencies) == 1 else ""
        lines.append(f"\n<b>Prices</b>: {format_price(facets.price_min, None)}–{format_price(facets.price_max, None)}"
                     f"{escape(currency)}: <code>under 20</code>, <code>over 5</code>, <code>5-20</code>")
    lines.append(f"\n<b>In stock</b>: {facets.in_stock} of {facets.products}: <code>in stock</code>")
    lines.append("\nExample: <code>apple category:apple under 20 in stock</code>")
    return cut_html_lines(lines, TEXT_LIMIT)


def _quoted(value: str) -> str:
    return f'"{value}"' if " " in value else value


def cut_html_lines(lines: list[str], limit: int) -> str:
    """Join whole lines while the visible text stays within `limit` (lines are never cut inside a tag)."""
    out: list[str] = []
    for line in lines:
        candidate = "\n".join([*out, line])
        if visible_length(candidate) > limit:
            break
        out.append(line)
    return "\n".join(out)


def visible_length(html_text: str) -> int:
    """Length of HTML parse-mode text as Telegram counts it: tags removed, entities decoded."""
    import re

    return utf16_len(html.unescape(re.sub(r"<[^>]+>", "", html_text)))


def no_match_text(kind: str, words: str | None, filters: Filters) -> str:
    """Nothing passed the relevance cut-off: say so and suggest what to try; never show junk."""
    with_filters = f" with <code>{escape(describe_filters(filters))}</code>" if not filters.is_empty() else ""
    if kind == "image":
        return ("😕 I couldn't find this product in the catalogue" + with_filters + ".\n"
                "Try another angle, a closer shot with the product filling the frame, or type a few words about it.")
    if kind == "similar":
        return "😕 Nothing else in the catalogue looks close enough to this product" + with_filters + "."
    shown = f" for <i>{escape(cut(words or '', 100))}</i>" if words else ""
    return ("😕 Nothing in the catalogue matches" + shown + with_filters + ".\n"
            "Try other or more words, fewer filters, or send a photo of the product.")


def filters_only_text(filters: Filters) -> str:
    """A message with filters and no words: ask for words (a photo works too)."""
    return (f"Got the filters <code>{escape(describe_filters(filters))}</code>. Now add a few words about the product "
            "(for example <i>apple under 20</i>) or send a photo with the filters as its caption.")


def image_problem_text(reason: str) -> str:
    """A photo that cannot be used (broken, too small, not an image, unsupported format)."""
    return (f"⚠️ I couldn't use this image: {escape(cut(reason, 200))}.\n"
            "Please send a regular photo of the product (JPEG, PNG or WebP).")


def too_large_text(limit_bytes: int) -> str:
    """A file over the download limit (Telegram lets bots download 20 MB at most)."""
    return (f"⚠️ This file is larger than {limit_bytes // (1024 * 1024)} MB, more than I can download. "
            "Please send it as a photo (not as a file), so Telegram compresses it.")


def not_an_image_text(what: str) -> str:
    """A document that is not an image (PDF, ZIP...)."""
    return f"⚠️ I can only search by photos, and this looks like {escape(what)}. Send a photo of the product or type a few words."


def unsupported_message_text(what: str) -> str:
    """Stickers, voice, video, locations...: say what works instead."""
    return f"I can't search by {escape(what)}. Send a photo of the product or type a few words about it."


def rate_limited_text(wait_seconds: float) -> str:
    """Per-user rate limit reached: polite, with the wait."""
    return f"⏳ You're sending a lot at once. Please wait {max(1, round(wait_seconds))} s and try again."


def expired_text() -> str:
    """A 'Show more' or 'More like this' button whose results are gone (expired or product removed)."""
    return "These results have expired. Please send the photo or the words again."


def product_gone_text() -> str:
    """'More like this' for a product removed from the catalogue since."""
    return "This product is no longer in the catalogue."


def failure_text() -> str:
    """An unexpected error: the user gets an answer, the details go to the log."""
    return "⚠️ Something went wrong on our side. Please try again in a moment."


def busy_text() -> str:
    """The search is not ready (no collection yet, store unreachable)."""
    return "⚠️ Search is not available right now. Please try again later."


def admin_only_text() -> str:
    """A non-admin used an admin command."""
    return "This command is for the shop's admins."


def stats_text(stats: dict[str, Any]) -> str:
    """/stats for admins: collection size, encoder, uptime."""
    uptime = int(stats.get("uptime_s", 0))
    hours, rest = divmod(uptime, 3600)
    lines = [
        "<b>visearch stats</b>",
        f"collection: <code>{escape(str(stats.get('collection')))}</code> ({escape(str(stats.get('backend')))})",
        f"images indexed: {stats.get('points', 0)}",
        f"encoder: <code>{escape(str(stats.get('encoder')))}</code> (dim {stats.get('dim')})",
        f"uptime: {hours} h {rest // 60} min",
    ]
    for key in ("searches", "rate_limited", "errors"):
        if key in stats:
            lines.append(f"{key.replace('_', ' ')}: {stats[key]}")
    return "\n".join(lines)
