"""Every sentence a customer reads, in one table: a notice reason -> its English text.

Channels render through `words(notice, style)`: the style says how a channel marks code, bold
and italics and escapes text (Telegram HTML, WhatsApp's *bold*, plain text for Viber), so the
sentences themselves exist once. Issue 16 localizes this module with gettext: keep every
customer-facing string here and nowhere else.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from visearch.bots.conversation.answers import (
    ContentKind,
    Notice,
    NoticeReason,
    SearchKind,
)
from visearch.bots.conversation.text import cut, price_text
from visearch.core.domain import Facets
from visearch.core.query_syntax import describe_filters


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class Style:
    """How a channel shows marked-up text. `escape` runs on every piece of text, markup is added after."""

    escape: Callable[[str], str] = _same
    code: Callable[[str], str] = _same
    bold: Callable[[str], str] = _same
    italic: Callable[[str], str] = _same


PLAIN = Style()
HTML = Style(
    escape=lambda t: html.escape(t, quote=True),
    code=lambda t: f"<code>{t}</code>",
    bold=lambda t: f"<b>{t}</b>",
    italic=lambda t: f"<i>{t}</i>",
)
WHATSAPP = Style(bold=lambda t: f"*{t}*", italic=lambda t: f"_{t}_")

# --- names of things ------------------------------------------------------------------------------

CONTENT_NAMES: Mapping[ContentKind, str] = MappingProxyType(
    {
        ContentKind.STICKER: "stickers",
        ContentKind.VOICE: "voice messages",
        ContentKind.AUDIO: "audio",
        ContentKind.VIDEO: "videos",
        ContentKind.VIDEO_NOTE: "video messages",
        ContentKind.ANIMATION: "GIFs",
        ContentKind.LOCATION: "locations",
        ContentKind.VENUE: "places",
        ContentKind.CONTACT: "contacts",
        ContentKind.POLL: "polls",
        ContentKind.DICE: "dice",
        ContentKind.FILE: "files",
        ContentKind.DOCUMENT: "documents",
        ContentKind.LINK: "links",
        ContentKind.REACTION: "reactions",
        ContentKind.OTHER: "this kind of message",
    }
)

#: common document types that are certainly not photos, as a sentence names them
DOCUMENT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "application/pdf": "a PDF document",
        "application/zip": "a ZIP archive",
        "application/msword": "a Word document",
        "text/plain": "a text file",
        "video/mp4": "a video",
    }
)


def document_name(mime: str | None) -> str:
    """`a PDF document`, or `a video/webm file` for a type without a name."""
    mime = (mime or "").lower()
    return DOCUMENT_NAMES.get(mime, f"a {mime} file" if mime else "a file")


# --- labels on cards and buttons ------------------------------------------------------------------

MORE_LIKE_THIS_LABEL = "More like this"
OPEN_IN_SHOP_LABEL = "Open in shop"
OPEN_LABEL = "Open"
SHOW_MORE_LABEL = "Show more"
OUT_OF_STOCK = "out of stock"
MORE_LIKE_ONE_OF_THESE = "More like one of these?"


def more_like(title: str) -> str:
    """A button or prompt naming one product: `More like Milk`."""
    return f"More like {title}"


def more_like_prompt(title: str) -> str:
    """The question above the reply buttons: `More like Milk?`."""
    return f"More like {title}?"


# --- the notices ----------------------------------------------------------------------------------

FILTER_EXAMPLES = ("under 20", "10-50", "category:milk", "brand:arla", "#organic", "in stock")


def _welcome(n: Notice, s: Style) -> str:
    examples = ", ".join(s.code(s.escape(e)) for e in FILTER_EXAMPLES)
    return (
        f"👋 {s.bold(s.escape(n.shop_name or 'Shop'))} visual search.\n\n"
        f"Send a {s.bold('photo')} of a product (or several photos in one album) and I will show the matching "
        f"products from the catalogue. You can also type a few words, for example {s.italic('green apple')}.\n\n"
        f"Narrow it down with filters in the text or the photo caption: {examples}. "
        "/filters shows what is available."
    )


def _with_filters(n: Notice, s: Style) -> str:
    if n.filters is None or n.filters.is_empty():
        return ""
    return f" with {s.code(s.escape(describe_filters(n.filters)))}"


def _no_match(n: Notice, s: Style) -> str:
    if n.search is SearchKind.IMAGE:
        return (
            f"😕 I couldn't find this product in the catalogue{_with_filters(n, s)}.\n"
            "Try another angle, a closer shot with the product filling the frame, or type a few words about it."
        )
    if n.search is SearchKind.SIMILAR:
        return f"😕 Nothing else in the catalogue looks close enough to this product{_with_filters(n, s)}."
    shown = f" for {s.italic(s.escape(cut(n.words or '', 100)))}" if n.words else ""
    return (
        f"😕 Nothing in the catalogue matches{shown}{_with_filters(n, s)}.\n"
        "Try other or more words, fewer filters, or send a photo of the product."
    )


def _filters_only(n: Notice, s: Style) -> str:
    shown = s.code(s.escape(describe_filters(n.filters))) if n.filters is not None else ""
    return (
        f"Got the filters {shown}. Now add a few words about the product "
        f"(for example {s.italic('apple under 20')}) or send a photo with the filters as its caption."
    )


def _bad_image(n: Notice, s: Style) -> str:
    return (
        f"⚠️ I couldn't use this image: {s.escape(cut(n.detail or 'it is not a picture', 200))}.\n"
        "Please send a regular photo of the product (JPEG, PNG or WebP)."
    )


def _download_failed(n: Notice, s: Style) -> str:
    return "⚠️ I couldn't use this image: it could not be downloaded.\nPlease send the photo again in a moment."


def _too_large(n: Notice, s: Style) -> str:
    megabytes = (n.limit_bytes or 0) // (1024 * 1024)
    return f"This file is larger than {megabytes} MB. Please send a smaller photo."


def _not_an_image(n: Notice, s: Style) -> str:
    return (
        f"⚠️ This is not an image ({s.escape(document_name(n.document))}): I can only search by photos. "
        "Send a photo of the product or type a few words."
    )


def _unsupported(n: Notice, s: Style) -> str:
    what = CONTENT_NAMES[n.content or ContentKind.OTHER]
    return f"I can't search by {s.escape(what)}. Send a photo of the product or type a few words about it."


def _rate_limited(n: Notice, s: Style) -> str:
    return f"⏳ You're sending a lot at once. Please wait {max(1, round(n.wait_seconds or 0))} s and try again."


#: notices worded the same whatever they carry, in every style
FIXED_SENTENCES: Mapping[NoticeReason, str] = MappingProxyType(
    {
        NoticeReason.ADMIN_ONLY: "This command is for the shop's admins.",
        NoticeReason.BUSY: "⏳ We're busy right now. Please send it again in a minute.",
        NoticeReason.UNAVAILABLE: "⚠️ Search is not available right now. Please try again later.",
        NoticeReason.EXPIRED: "These results have expired. Please send the photo or the words again.",
        NoticeReason.PRODUCT_GONE: "This product is no longer in the catalogue.",
        NoticeReason.FAILURE: "⚠️ Something went wrong on our side. Please try again in a moment.",
    }
)


def _fixed(n: Notice, s: Style) -> str:
    return FIXED_SENTENCES[n.reason]


def _filters_list(n: Notice, s: Style) -> str:
    return "\n".join(filters_lines(n.facets or Facets(products=0), s))


def _stats(n: Notice, s: Style) -> str:
    return "\n".join(stats_lines(n.stats, s))


WORDING: Mapping[NoticeReason, Callable[[Notice, Style], str]] = MappingProxyType(
    {
        NoticeReason.WELCOME: _welcome,
        NoticeReason.FILTERS_LIST: _filters_list,
        NoticeReason.STATS: _stats,
        NoticeReason.ADMIN_ONLY: _fixed,
        NoticeReason.FILTERS_ONLY: _filters_only,
        NoticeReason.NO_MATCH: _no_match,
        NoticeReason.BAD_IMAGE: _bad_image,
        NoticeReason.DOWNLOAD_FAILED: _download_failed,
        NoticeReason.TOO_LARGE: _too_large,
        NoticeReason.NOT_AN_IMAGE: _not_an_image,
        NoticeReason.UNSUPPORTED: _unsupported,
        NoticeReason.RATE_LIMITED: _rate_limited,
        NoticeReason.BUSY: _fixed,
        NoticeReason.UNAVAILABLE: _fixed,
        NoticeReason.EXPIRED: _fixed,
        NoticeReason.PRODUCT_GONE: _fixed,
        NoticeReason.FAILURE: _fixed,
    }
)


def words(notice: Notice, style: Style = PLAIN) -> str:
    """The notice in words, marked up in the channel's style."""
    return WORDING[notice.reason](notice, style)


def _quoted(value: str) -> str:
    return f'"{value}"' if " " in value else value


def filters_lines(facets: Facets, s: Style, shown: int = 12) -> list[str]:
    """/filters line by line (a channel with a length limit keeps whole lines): the categories and
    brands with product counts, the price range, the syntax."""
    lines = [f"{s.bold(f'{facets.products} products')} in the catalogue."]

    def listing(title: str, values: dict[str, int], prefix: str) -> None:
        if not values:
            return
        items = [f"{s.code(s.escape(prefix + _quoted(v)))} ({n})" for v, n in list(values.items())[:shown]]
        more = f" and {len(values) - shown} more" if len(values) > shown else ""
        lines.append(f"\n{s.bold(title)}: " + ", ".join(items) + more)

    listing("Categories", facets.categories, "category:")
    listing("Brands", facets.brands, "brand:")
    listing("Tags", facets.tags, "#")
    listing("Colours", facets.colours, "colour:")
    if facets.price_min is not None and facets.price_max is not None:
        currency = f" {facets.currencies[0]}" if len(facets.currencies) == 1 else ""
        lines.append(
            f"\n{s.bold('Prices')}: {price_text(facets.price_min)}–{price_text(facets.price_max)}"
            f"{s.escape(currency)}: {s.code('under 20')}, {s.code('over 5')}, {s.code('5-20')}"
        )
    lines.append(f"\n{s.bold('In stock')}: {facets.in_stock} of {facets.products}: {s.code('in stock')}")
    lines.append(f"\nExample: {s.code('apple category:apple under 20 in stock')}")
    return lines


STATS_COUNTERS = (("searches", "searches"), ("rate_limited", "rate limited"), ("errors", "errors"))


def stats_lines(stats: Mapping[str, object], s: Style) -> list[str]:
    """/stats for admins: collection size, encoder, uptime, and this channel's counts."""
    uptime = int(float(str(stats.get("uptime_s", 0) or 0)))
    hours, rest = divmod(uptime, 3600)
    lines = [
        s.bold("visearch stats"),
        f"collection: {s.code(s.escape(str(stats.get('collection'))))} ({s.escape(str(stats.get('backend')))})",
        f"images indexed: {stats.get('points', 0)}",
        f"encoder: {s.code(s.escape(str(stats.get('encoder'))))} (dim {stats.get('dim')})",
        f"uptime: {hours} h {rest // 60} min",
    ]
    lines.extend(f"{label}: {stats[key]}" for key, label in STATS_COUNTERS if key in stats)
    return lines
