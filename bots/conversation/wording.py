"""Every sentence a customer reads, in the customer's language: `Wording` words a notice, a button, a price.

The sentences are gettext messages (English msgids; `bots/locales/*/LC_MESSAGES/visearch.po` hold
the translations, `make locales` extracts and compiles them). Channels render through
`Wording.words(notice, style)`: the style says how a channel marks code, bold and italics and
escapes text (Telegram HTML, WhatsApp's *bold*, plain text for Viber), so each sentence exists
once. Markup never sits inside a translated sentence: the marked-up parts are its placeholders.
Prices and counts are formatted by Babel for the locale (`1 234,50 ₴`, `R$ 12,90`); plural forms
come from the catalog (`ngettext`), never from `if n == 1`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from babel import Locale
from babel.numbers import UnknownCurrencyError, format_currency, format_decimal, is_currency
from babel.support import NullTranslations

from visearch.bots.conversation.answers import COMMANDS, ContentKind, Notice, NoticeReason, SearchKind
from visearch.bots.conversation.i18n import Locales
from visearch.bots.conversation.text import cut
from visearch.core.domain import Card, Facets, Filters
from visearch.core.errors import ImageProblem

#: a category longer than this is cut on a card's facts line
CATEGORY_LIMIT = 60


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


def N_(message: str) -> str:  # gettext's name for "extract this, translate later"
    """Mark a message for extraction where it is defined; `Wording` translates it where it is shown."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:  # the plural sibling of N_
    """Mark a plural message (its two English forms) for extraction; translated with `plural_form`."""
    return singular, plural


#: common document types that are certainly not photos (the conversation refuses them by type)
DOCUMENT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "application/pdf": N_("a PDF document"),
        "application/zip": N_("a ZIP archive"),
        "application/msword": N_("a Word document"),
        "text/plain": N_("a text file"),
        "video/mp4": N_("a video"),
    }
)

CONTENT_NAMES: Mapping[ContentKind, str] = MappingProxyType(
    {
        ContentKind.STICKER: N_("stickers"),
        ContentKind.VOICE: N_("voice messages"),
        ContentKind.AUDIO: N_("audio"),
        ContentKind.VIDEO: N_("videos"),
        ContentKind.VIDEO_NOTE: N_("video messages"),
        ContentKind.ANIMATION: N_("GIFs"),
        ContentKind.LOCATION: N_("locations"),
        ContentKind.VENUE: N_("places"),
        ContentKind.CONTACT: N_("contacts"),
        ContentKind.POLL: N_("polls"),
        ContentKind.DICE: N_("dice"),
        ContentKind.FILE: N_("files"),
        ContentKind.DOCUMENT: N_("documents"),
        ContentKind.LINK: N_("links"),
        ContentKind.REACTION: N_("reactions"),
        ContentKind.OTHER: N_("this kind of message"),
    }
)

IMAGE_PROBLEMS: Mapping[ImageProblem, str] = MappingProxyType(
    {
        ImageProblem.EMPTY: N_("the file is empty"),
        ImageProblem.NOT_AN_IMAGE: N_("it is not a picture"),
        ImageProblem.BROKEN: N_("the picture is broken or cut off"),
        ImageProblem.TOO_LARGE: N_("the picture is too large"),
        ImageProblem.TOO_SMALL: N_("the picture is too small"),
        ImageProblem.UNSUPPORTED: N_("this kind of picture is not supported"),
        ImageProblem.UNREADABLE: N_("the file cannot be read"),
    }
)

#: notices worded the same whatever they carry, in every style
FIXED_SENTENCES: Mapping[NoticeReason, str] = MappingProxyType(
    {
        NoticeReason.ADMIN_ONLY: N_("This command is for the shop's admins."),
        NoticeReason.BUSY: N_("⏳ We're busy right now. Please send it again in a minute."),
        NoticeReason.UNAVAILABLE: N_("⚠️ Search is not available right now. Please try again later."),
        NoticeReason.EXPIRED: N_("These results have expired. Please send the photo or the words again."),
        NoticeReason.PRODUCT_GONE: N_("This product is no longer in the catalogue."),
        NoticeReason.FAILURE: N_("⚠️ Something went wrong on our side. Please try again in a moment."),
    }
)

#: what each command does, as the platform's command menu shows it (Telegram setMyCommands)
COMMAND_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "start": N_("How to search by photo or words"),
        "help": N_("How to search by photo or words"),
        "filters": N_("What you can filter by"),
        "stats": N_("Search statistics (for admins)"),
    }
)
assert set(COMMAND_DESCRIPTIONS) == set(COMMANDS)


_CODE_BESIDE_DIGIT = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def _spaced(price: str) -> str:
    """`SEK 12.50`, not CLDR's `SEK12.50`: a currency shown by its letters keeps a no-break space."""
    return _CODE_BESIDE_DIGIT.sub("\u00a0", price)


def _quoted(value: str) -> str:
    return f'"{value}"' if " " in value else value


class Wording:
    """The words of one locale: notices, button labels, prices. One per locale, shared by every user."""

    def __init__(self, locale: str, translations: NullTranslations) -> None:
        self.locale = locale
        self.babel = Locale.parse(locale)
        self._t = translations

    # --- the catalog ------------------------------------------------------------------------------

    def _(self, message: str) -> str:
        """The message in this locale (the English msgid when the catalog lacks it)."""
        return self._t.gettext(message)

    def gettext(self, message: str) -> str:
        """The message in this locale, for words that live outside this module (the web page's)."""
        return self._(message)

    def plural_form(self, singular: str, plural: str, count: int) -> str:
        """The catalog's plural form for `count`, placeholders left unfilled (the page fills them)."""
        return self._t.ngettext(singular, plural, count)

    def plural(self, singular: str, plural: str, count: int) -> str:
        """The catalog's plural form for `count` (`%(num)s` in the message is the formatted count)."""
        return self._t.ngettext(singular, plural, count) % {"num": self.number(count)}

    @property
    def right_to_left(self) -> bool:
        """Arabic, Hebrew, Persian...: a page sets `dir="rtl"`."""
        return self.babel.character_order == "right-to-left"

    # --- numbers and prices -----------------------------------------------------------------------

    def number(self, value: float) -> str:
        """`1 234,5` in uk, `1,234.5` in en."""
        return format_decimal(value, format="#,##0.##", locale=self.babel)

    def price(self, value: float | None, currency: str | None = None) -> str:
        """`1 234,50 ₴`, `R$ 12,90`, `$15.00`; a currency that is no ISO code stays beside the number."""
        if value is None:
            return ""
        code = (currency or "").strip()
        if len(code) == 3 and is_currency(code.upper()):
            try:
                return _spaced(format_currency(value, code.upper(), locale=self.babel))
            except UnknownCurrencyError:
                pass
        amount = self.number(value)
        return f"{amount} {code}".strip()

    def card_price(self, card: Card) -> str:
        return self.price(card.price, card.currency)

    def card_facts(self, card: Card, *more: str) -> str:
        """'price · category' (and any `more`), leaving out what the card lacks: the line under a card's title."""
        category = cut(card.category or "", CATEGORY_LIMIT)  # a long category never hides the stock
        return " · ".join(p for p in (self.card_price(card), category, *more) if p)

    # --- labels on cards and buttons --------------------------------------------------------------

    @property
    def more_like_this(self) -> str:
        return self._("More like this")

    @property
    def open_in_shop(self) -> str:
        return self._("Open in shop")

    @property
    def open(self) -> str:
        return self._("Open")

    @property
    def show_more(self) -> str:
        return self._("Show more")

    @property
    def out_of_stock(self) -> str:
        return self._("out of stock")

    @property
    def in_stock(self) -> str:
        return self._("in stock")

    @property
    def more_like_one_of_these(self) -> str:
        return self._("More like one of these?")

    def more_like(self, title: str) -> str:
        """A button naming one product: `More like Milk`."""
        return self._("More like %(title)s") % {"title": title}

    def more_like_prompt(self, title: str) -> str:
        """The question above the reply buttons: `More like Milk?`."""
        return self._("More like %(title)s?") % {"title": title}

    def command_description(self, command: str) -> str:
        return self._(COMMAND_DESCRIPTIONS[command])

    def document_name(self, mime: str | None) -> str:
        """`a PDF document`, or `a video/webm file` for a type without a name."""
        mime = (mime or "").lower()
        if mime in DOCUMENT_NAMES:
            return self._(DOCUMENT_NAMES[mime])
        return self._("a %(type)s file") % {"type": mime} if mime else self._("a file")

    # --- filters, in this locale's own syntax -----------------------------------------------------

    def filter_examples(self) -> list[str]:
        """Filters a customer can type, as the welcome shows them (each one parses in the filter syntax)."""
        return [self._("under 20"), "10-50", "category:milk", "brand:arla", "#organic", self._("in stock")]

    def describe_filters(self, filters: Filters) -> str:
        """Filters as a customer would type them in this language (`до 20 category:milk в наявності`)."""
        parts = [f"category:{_quoted(c)}" for c in filters.categories]
        parts += [f"brand:{_quoted(b)}" for b in filters.brands]
        parts += [f"#{t}" if " " not in t else f"tag:{_quoted(t)}" for t in filters.tags]
        parts += [f"colour:{_quoted(c)}" for c in filters.colours]
        low, high = filters.price_min, filters.price_max
        if low is not None and high is not None:
            parts.append(f"{self._amount(low)}-{self._amount(high)}")
        elif high is not None:
            parts.append(self._("under %(price)s") % {"price": self._amount(high)})
        elif low is not None:
            parts.append(self._("over %(price)s") % {"price": self._amount(low)})
        if filters.in_stock:
            parts.append(self._("in stock"))
        return " ".join(parts)

    def _amount(self, value: float) -> str:
        """A price as the filter syntax reads it back: the locale's decimal sign, no grouping."""
        return format_decimal(value, format="0.##", locale=self.babel)

    # --- notices ----------------------------------------------------------------------------------

    def words(self, notice: Notice, style: Style = PLAIN) -> str:
        """The notice in words, marked up in the channel's style."""
        if notice.reason in FIXED_SENTENCES:
            return style.escape(self._(FIXED_SENTENCES[notice.reason]))
        return _NOTICES[notice.reason](self, notice, style)

    def _fill(self, s: Style, message: str, **marked: str) -> str:
        """Translate, escape, then put in the already marked-up parts."""
        return s.escape(self._(message)) % marked

    def _filters_code(self, n: Notice, s: Style) -> str:
        return s.code(s.escape(self.describe_filters(n.filters or Filters())))

    def _has_filters(self, n: Notice) -> bool:
        return n.filters is not None and not n.filters.is_empty()

    def welcome(self, n: Notice, s: Style) -> str:
        examples = ", ".join(s.code(s.escape(e)) for e in self.filter_examples())
        shop = s.bold(s.escape(n.shop_name or self._("Shop")))
        example = s.italic(s.escape(self._("green apple")))
        return "\n\n".join(
            [
                self._fill(s, "👋 %(shop)s visual search.", shop=shop),
                self._fill(
                    s,
                    "Send a photo of a product (or several photos in one album) and I will show the matching "
                    "products from the catalogue. You can also type a few words, for example %(example)s.",
                    example=example,
                ),
                self._fill(
                    s,
                    "Narrow it down with filters in the text or the photo caption: %(examples)s. "
                    "/filters shows what is available.",
                    examples=examples,
                ),
            ]
        )

    def no_match(self, n: Notice, s: Style) -> str:
        filters = self._filters_code(n, s)
        with_filters = self._has_filters(n)
        if n.search is SearchKind.IMAGE:
            first = (
                self._fill(s, "😕 I couldn't find this product in the catalogue with %(filters)s.", filters=filters)
                if with_filters
                else self._fill(s, "😕 I couldn't find this product in the catalogue.")
            )
            advice = self._fill(
                s, "Try another angle, a closer shot with the product filling the frame, or type a few words about it."
            )
            return f"{first}\n{advice}"
        if n.search is SearchKind.SIMILAR:
            return self._fill(s, "😕 Nothing else in the catalogue looks close enough to this product.")
        words = s.italic(s.escape(cut(n.words or "", 100)))
        if n.words and with_filters:
            first = self._fill(
                s, "😕 Nothing in the catalogue matches %(words)s with %(filters)s.", words=words, filters=filters
            )
        elif n.words:
            first = self._fill(s, "😕 Nothing in the catalogue matches %(words)s.", words=words)
        else:
            first = self._fill(s, "😕 Nothing in the catalogue matches.")
        return f"{first}\n" + self._fill(s, "Try other or more words, fewer filters, or send a photo of the product.")

    def filters_only(self, n: Notice, s: Style) -> str:
        example = s.italic(s.escape(self._("apple under 20")))
        return self._fill(
            s,
            "Got the filters %(filters)s. Now add a few words about the product (for example %(example)s) "
            "or send a photo with the filters as its caption.",
            filters=self._filters_code(n, s),
            example=example,
        )

    def bad_image(self, n: Notice, s: Style) -> str:
        reason = self._(IMAGE_PROBLEMS[n.image_problem or ImageProblem.NOT_AN_IMAGE])
        return self._fill(
            s,
            "⚠️ I couldn't use this image: %(reason)s.\nPlease send a regular photo of the product (JPEG, PNG or WebP).",
            reason=s.escape(reason),
        )

    def download_failed(self, n: Notice, s: Style) -> str:
        return self._fill(
            s, "⚠️ I couldn't use this image: it could not be downloaded.\nPlease send the photo again in a moment."
        )

    def too_large(self, n: Notice, s: Style) -> str:
        megabytes = max(1, (n.limit_bytes or 0) // (1024 * 1024))
        return s.escape(
            self.plural(
                "This file is larger than %(num)s MB. Please send a smaller photo.",
                "This file is larger than %(num)s MB. Please send a smaller photo.",
                megabytes,
            )
        )

    def not_an_image(self, n: Notice, s: Style) -> str:
        return self._fill(
            s,
            "⚠️ This is not an image (%(document)s): I can only search by photos. Send a photo of the product or type a few words.",
            document=s.escape(self.document_name(n.document)),
        )

    def unsupported(self, n: Notice, s: Style) -> str:
        what = self._(CONTENT_NAMES[n.content or ContentKind.OTHER])
        return self._fill(
            s,
            "I can't search by %(what)s. Send a photo of the product or type a few words about it.",
            what=s.escape(what),
        )

    def rate_limited(self, n: Notice, s: Style) -> str:
        seconds = max(1, round(n.wait_seconds or 0))
        return s.escape(
            self.plural(
                "⏳ You're sending a lot at once. Please wait %(num)s second and try again.",
                "⏳ You're sending a lot at once. Please wait %(num)s seconds and try again.",
                seconds,
            )
        )

    def filters_list(self, n: Notice, s: Style) -> str:
        return "\n".join(self.filters_lines(n.facets or Facets(products=0), s))

    def stats(self, n: Notice, s: Style) -> str:
        return "\n".join(self.stats_lines(n.stats, s))

    # --- /filters and /stats ----------------------------------------------------------------------

    def filters_lines(self, facets: Facets, s: Style, shown: int = 12) -> list[str]:
        """/filters line by line (a channel with a length limit keeps whole lines): the categories and
        brands with product counts, the price range, the syntax."""
        count = facets.products
        lines = [
            s.bold(
                s.escape(self.plural("%(num)s product in the catalogue.", "%(num)s products in the catalogue.", count))
            )
        ]

        def listing(title: str, values: dict[str, int], prefix: str) -> None:
            if not values:
                return
            items = [
                f"{s.code(s.escape(prefix + _quoted(v)))} ({self.number(n)})" for v, n in list(values.items())[:shown]
            ]
            text = ", ".join(items)
            if len(values) > shown:
                more = len(values) - shown
                text += " " + s.escape(self.plural("and %(num)s more", "and %(num)s more", more))
            lines.append(f"\n{s.bold(s.escape(title))}: {text}")

        listing(self._("Categories"), facets.categories, "category:")
        listing(self._("Brands"), facets.brands, "brand:")
        listing(self._("Tags"), facets.tags, "#")
        listing(self._("Colours"), facets.colours, "colour:")
        if facets.price_min is not None and facets.price_max is not None:
            currency = facets.currencies[0] if len(facets.currencies) == 1 else None
            span = f"{self.price(facets.price_min, currency)}–{self.price(facets.price_max, currency)}"
            examples = ", ".join(s.code(s.escape(e)) for e in (self._("under 20"), self._("over 5"), "5-20"))
            prices = self._("Prices")
            lines.append(f"\n{s.bold(s.escape(prices))}: {s.escape(span)}: {examples}")
        stock_title = self._("In stock")
        in_stock_example = s.code(s.escape(self._("in stock")))
        in_stock = self._fill(
            s,
            "%(count)s of %(total)s are in stock: %(example)s",
            count=s.escape(self.number(facets.in_stock)),
            total=s.escape(self.number(facets.products)),
            example=in_stock_example,
        )
        lines.append(f"\n{s.bold(s.escape(stock_title))}: {in_stock}")
        example = s.code(s.escape(self._("apple category:apple under 20 in stock")))
        lines.append("\n" + self._fill(s, "Example: %(example)s", example=example))
        return lines

    def stats_lines(self, stats: Mapping[str, object], s: Style) -> list[str]:
        """/stats for admins: collection size, encoder, uptime, and this channel's counts."""
        uptime = int(float(str(stats.get("uptime_s", 0) or 0)))
        hours, rest = divmod(uptime, 3600)
        lines = [
            s.bold(s.escape(self._("visearch stats"))),
            self._fill(
                s,
                "collection: %(name)s (%(backend)s)",
                name=s.code(s.escape(str(stats.get("collection")))),
                backend=s.escape(str(stats.get("backend"))),
            ),
            self._fill(
                s, "images indexed: %(count)s", count=s.escape(self.number(int(str(stats.get("points", 0) or 0))))
            ),
            self._fill(
                s,
                "encoder: %(name)s (dim %(dim)s)",
                name=s.code(s.escape(str(stats.get("encoder")))),
                dim=s.escape(str(stats.get("dim"))),
            ),
            self._fill(s, "uptime: %(hours)s h %(minutes)s min", hours=str(hours), minutes=str(rest // 60)),
        ]
        counters = {
            "searches": self._("searches: %(count)s"),
            "rate_limited": self._("rate limited: %(count)s"),
            "errors": self._("errors: %(count)s"),
        }
        lines.extend(s.escape(label) % {"count": stats[key]} for key, label in counters.items() if key in stats)
        return lines


_NOTICES: Mapping[NoticeReason, Callable[[Wording, Notice, Style], str]] = MappingProxyType(
    {
        NoticeReason.WELCOME: Wording.welcome,
        NoticeReason.FILTERS_LIST: Wording.filters_list,
        NoticeReason.STATS: Wording.stats,
        NoticeReason.FILTERS_ONLY: Wording.filters_only,
        NoticeReason.NO_MATCH: Wording.no_match,
        NoticeReason.BAD_IMAGE: Wording.bad_image,
        NoticeReason.DOWNLOAD_FAILED: Wording.download_failed,
        NoticeReason.TOO_LARGE: Wording.too_large,
        NoticeReason.NOT_AN_IMAGE: Wording.not_an_image,
        NoticeReason.UNSUPPORTED: Wording.unsupported,
        NoticeReason.RATE_LIMITED: Wording.rate_limited,
    }
)
assert set(_NOTICES) | set(FIXED_SENTENCES) == set(NoticeReason)


class Wordings:
    """Every locale's `Wording`, made once each on first use: a renderer picks one by locale."""

    def __init__(self, locales: Locales) -> None:
        self.locales = locales
        self._made: dict[str, Wording] = {}

    def of(self, locale: str) -> Wording:
        """The words of a locale on offer."""
        if locale not in self._made:
            self._made[locale] = Wording(locale, self.locales.translations(locale))
        return self._made[locale]

    def for_header(self, accept_language: str | None) -> Wording:
        """The words for an `Accept-Language` header (the HTTP API's messages)."""
        return self.of(self.locales.negotiate_header(accept_language))


#: the source language's words (no catalog needed): what a renderer uses when it is given no locale
ENGLISH = Wording("en", NullTranslations())
