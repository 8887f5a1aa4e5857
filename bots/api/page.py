"""The search page in the visitor's language: `index.html` filled with one locale's words.

The page is one HTML file with `{{name}}` slots; the server fills them for the locale it picks
(`?lang=` from the language switcher, else the browser's `Accept-Language`, else the shop's
default) and sets `<html lang dir>` (Arabic is right-to-left). The sentences the script shows
later (errors, "Searching…", "3 products") travel in a JSON block, with each plural message's
forms keyed by CLDR plural category so the browser's `Intl.PluralRules` picks the catalog's form.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from types import MappingProxyType

from visearch.bots.conversation.i18n import Locales, accept_language, locale_names
from visearch.bots.conversation.wording import N_, NP_, Wording

#: the page's own words, by slot name (`{{name}}` in index.html, `t("name")` in app.js)
PAGE_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "title": N_("visearch: find products by photo"),
        "lede": N_("Drop a photo of a product, or type what you are looking for."),
        "drop": N_("Drop a photo here or"),
        "choose": N_("choose one"),
        "placeholder": N_("or type: green apple, oat milk..."),
        "search": N_("Search"),
        "filters": N_("Filters"),
        "category": N_("Category"),
        "any": N_("any"),
        "price_from": N_("Price from"),
        "price_to": N_("to"),
        "in_stock_only": N_("in stock only"),
        "clear_photo": N_("clear photo"),
        "results": N_("results"),
        "language": N_("Language"),
        "show_more": N_("Show more"),
        "open": N_("View in shop"),
        "more_like_this": N_("More like this"),
        "in_stock": N_("in stock"),
        "out_of_stock": N_("out of stock"),
        "offline": N_("The server cannot be reached. Check your connection and try again."),
        "too_large": N_("That photo is too large. Try a smaller one."),
        "busy": N_("The search is busy. Try again in a moment."),
        "failed": N_("Something went wrong (%(status)s). Try again."),
        "unreadable": N_("That file is not a photo we can read. Choose a JPEG, PNG or WebP image."),
        "not_a_photo": N_("That file is not a photo. Choose a JPEG, PNG or WebP image."),
        "check_price": N_("Check the price range: %(detail)s"),
        "no_match": N_("No matching products."),
        "need_query": N_("Choose a photo or type a few words first."),
        "searching": N_("Searching…"),
        "loading_more": N_("Loading more…"),
        "finding_like": N_("Finding products like %(title)s…"),
        "more_like_status": N_("More like %(title)s: %(status)s"),
    }
)

#: plural messages the script shows with a count (`%(num)s`)
PAGE_PLURALS: Mapping[str, tuple[str, str]] = MappingProxyType({"products": NP_("%(num)s product", "%(num)s products")})

_SLOT = re.compile(r"\{\{([a-z_]+)\}\}")
#: counts tried to find one example number of each plural category (CLDR rules repeat within 0-200)
_SAMPLE_COUNTS = range(201)


def page_locale(locales: Locales, lang: str | None, accept_language_header: str | None) -> str:
    """`?lang=` (the switcher) wins over the browser's `Accept-Language`; else the shop's default."""
    return locales.negotiate(lang, *accept_language(accept_language_header))


def plural_forms(wording: Wording, singular: str, plural: str) -> dict[str, str]:
    """The catalog's form for each CLDR plural category of the locale (`one`, `few`, `many`, `other`),
    with `%(num)s` left for the script to fill."""
    forms: dict[str, str] = {}
    for count in _SAMPLE_COUNTS:
        category = wording.babel.plural_form(count)
        if category not in forms:
            forms[category] = wording.plural_form(singular, plural, count)
    return forms


def page_messages(wording: Wording) -> dict[str, object]:
    """What app.js says, in this locale: the sentences, the plural forms, the language tag."""
    return {
        "lang": wording.locale.replace("_", "-"),
        "messages": {key: wording.gettext(message) for key, message in PAGE_MESSAGES.items()},
        "plurals": {key: plural_forms(wording, *forms) for key, forms in PAGE_PLURALS.items()},
    }


def language_switcher(locales: Locales, current: str) -> str:
    """Links to the page in every locale on offer, each named in its own language."""
    links = []
    for code, name in locale_names(locales.ordered()).items():
        tag = code.replace("_", "-")
        current_mark = ' aria-current="true"' if code == current else ""
        links.append(
            f'<a href="?lang={html.escape(tag)}" hreflang="{html.escape(tag)}" lang="{html.escape(tag)}"{current_mark}>{html.escape(name)}</a>'
        )
    return " ".join(links)


def render_page(template: str, wording: Wording, locales: Locales) -> str:
    """index.html with every slot filled (escaped) for `wording`'s locale."""
    data = json.dumps(page_messages(wording), ensure_ascii=False).replace("<", "\\u003c")
    filled = {
        "lang": html.escape(wording.locale.replace("_", "-")),
        "dir": "rtl" if wording.right_to_left else "ltr",
        "switcher": language_switcher(locales, wording.locale),
        "page_data": data,
    }

    def slot(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in filled:
            return filled[name]
        return html.escape(wording.gettext(PAGE_MESSAGES[name]))

    return _SLOT.sub(slot, template)
