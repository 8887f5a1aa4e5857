"""The small filter syntax customers type in a chat: `red shoes under 50`, `category:dairy`, `in stock`.

Every messenger adapter (and the web page) turns the words of a message or a photo caption into
search words plus `Filters` with `parse_query_text`. What it understands, case-insensitively:

=========================================  =====================================
typed                                       means
=========================================  =====================================
``category:dairy``  ``cat:"sour cream"``    category is dairy (several: any of)
``brand:arla``                              brand is arla (several: any of)
``tag:organic``  ``#organic``               has the tag (several: all of)
``colour:red``  ``color:"light blue"``      dominant colour of the photo (several: any of)
``under 50`` ``below 50`` ``<50`` ``max 50``  price at most 50
``over 10`` ``above 10`` ``>10`` ``min 10``   price at least 10
``10-50`` ``from 10 to 50`` ``price:10-50``   price between 10 and 50
``in stock``  ``available``                 only products in stock
=========================================  =====================================

A currency sign or code next to a number is allowed (`under $50`, `under 50 sek`). Everything
else is kept as the words to search for. The parser never fails: what it cannot read stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from visearch.core.domain import Filters

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_CURRENCY = r"(?:[$€£¥₽]|kr|sek|usd|eur|gbp|rub|nok|dkk)?"
_AMOUNT = rf"{_CURRENCY}\s?{_NUMBER}\s?{_CURRENCY}"

_FIELD = re.compile(r"""(?<!\S)(category|cat|brand|tag|colour|color):\s?(?:"([^"]+)"|'([^']+)'|(\S+))""", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<!\S)#([^\s#]+)")
_RANGE = re.compile(rf"(?<!\S)(?:price:\s?)?{_AMOUNT}\s?(?:-|–|\.\.|to)\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_BETWEEN = re.compile(rf"(?<!\S)(?:between|from)\s+{_AMOUNT}\s+(?:and|to)\s+{_AMOUNT}(?!\S)", re.IGNORECASE)
_MAX = re.compile(
    rf"(?<!\S)(?:under|below|less than|cheaper than|up to|max|at most|<=?)\s?{_AMOUNT}(?!\S)", re.IGNORECASE
)
_MIN = re.compile(rf"(?<!\S)(?:over|above|more than|from|min|at least|>=?)\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_PRICE_ONLY = re.compile(rf"(?<!\S)price:\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_IN_STOCK = re.compile(r"(?<!\S)(?:in[\s-]stock|available|in:stock)(?!\S)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedQuery:
    """The words to search for and the filters read from a message."""

    text: str
    filters: Filters
    understood: list[str] = field(default_factory=list)

    @property
    def has_words(self) -> bool:
        """True when words are left to search for once the filters are taken out."""
        return bool(self.text)


#: the largest amount a message can ask for: `under 999...9` (hundreds of digits) means "any price",
#: never an infinite number reaching the store
MAX_AMOUNT = 1e12


def _amount(value: str) -> float:
    return min(float(value.replace(",", ".")), MAX_AMOUNT)


def parse_query_text(message: str) -> ParsedQuery:
    """Split a message into search words and `Filters`; `understood` lists the filter phrases found."""
    text = " ".join((message or "").split())
    understood: list[str] = []
    categories: list[str] = []
    brands: list[str] = []
    tags: list[str] = []
    colours: list[str] = []
    price_min: float | None = None
    price_max: float | None = None
    in_stock: bool | None = None

    def take(pattern: re.Pattern[str], handler: Callable[[re.Match[str]], object]) -> None:
        nonlocal text
        while match := pattern.search(text):
            handler(match)
            understood.append(match.group(0).strip())
            text = (text[: match.start()] + " " + text[match.end() :]).strip()

    def on_field(m: re.Match[str]) -> None:
        value = (m.group(2) or m.group(3) or m.group(4)).strip()
        {"category": categories, "cat": categories, "brand": brands, "tag": tags, "colour": colours, "color": colours}[
            m.group(1).lower()
        ].append(value)

    def on_range(m: re.Match[str]) -> None:
        nonlocal price_min, price_max
        low, high = sorted((_amount(m.group(1)), _amount(m.group(2))))
        price_min, price_max = low, high

    def on_max(m: re.Match[str]) -> None:
        nonlocal price_max
        price_max = _amount(m.group(1))

    def on_min(m: re.Match[str]) -> None:
        nonlocal price_min
        price_min = _amount(m.group(1))

    def on_price(m: re.Match[str]) -> None:  # a bare price: exactly that amount
        on_min(m)
        on_max(m)

    def on_stock(_: re.Match[str]) -> None:
        nonlocal in_stock
        in_stock = True

    take(_FIELD, on_field)
    take(_HASHTAG, lambda m: tags.append(m.group(1)))
    take(_BETWEEN, on_range)
    take(_RANGE, on_range)
    take(_MAX, on_max)
    take(_MIN, on_min)
    take(_PRICE_ONLY, on_price)
    take(_IN_STOCK, on_stock)

    if price_min is not None and price_max is not None and price_min > price_max:
        price_min, price_max = price_max, price_min
    filters = Filters(
        categories=categories,
        brands=brands,
        tags=tags,
        colours=colours,
        price_min=price_min,
        price_max=price_max,
        in_stock=in_stock,
    )
    return ParsedQuery(text=" ".join(text.split()), filters=filters, understood=understood)


def describe_filters(filters: Filters) -> str:
    """The filters in the same syntax a customer types, e.g. `category:dairy under 20 in stock`."""
    parts = [f"category:{_quote(c)}" for c in filters.categories]
    parts += [f"brand:{_quote(b)}" for b in filters.brands]
    parts += [f"#{t}" for t in filters.tags]
    parts += [f"colour:{_quote(c)}" for c in filters.colours]
    if filters.price_min is not None and filters.price_max is not None:
        parts.append(f"{_fmt(filters.price_min)}-{_fmt(filters.price_max)}")
    elif filters.price_max is not None:
        parts.append(f"under {_fmt(filters.price_max)}")
    elif filters.price_min is not None:
        parts.append(f"over {_fmt(filters.price_min)}")
    if filters.in_stock:
        parts.append("in stock")
    return " ".join(parts)


def _quote(value: str) -> str:
    return f'"{value}"' if " " in value else value


def _fmt(value: float) -> str:
    return f"{value:g}"
