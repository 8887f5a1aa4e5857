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
    reading = _Reading(text=" ".join((message or "").split()))
    for pattern, handler in _PHRASES:
        reading.take(pattern, handler)
    return ParsedQuery(text=" ".join(reading.text.split()), filters=reading.filters(), understood=reading.understood)


@dataclass
class _Reading:
    """One message being read: the text still left, the phrases taken out of it and what they set."""

    text: str
    understood: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    brands: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    price_min: float | None = None
    price_max: float | None = None
    in_stock: bool | None = None

    def take(self, pattern: re.Pattern[str], handler: Callable[[_Reading, re.Match[str]], None]) -> None:
        """Hand each match of `pattern` to `handler` and cut it out of the text, until none is left."""
        while match := pattern.search(self.text):
            handler(self, match)
            self.understood.append(match.group(0).strip())
            self.text = (self.text[: match.start()] + " " + self.text[match.end() :]).strip()

    def on_field(self, m: re.Match[str]) -> None:
        value = (m.group(2) or m.group(3) or m.group(4)).strip()
        lists = {
            "category": self.categories,
            "cat": self.categories,
            "brand": self.brands,
            "tag": self.tags,
            "colour": self.colours,
            "color": self.colours,
        }
        lists[m.group(1).lower()].append(value)

    def on_hashtag(self, m: re.Match[str]) -> None:
        self.tags.append(m.group(1))

    def on_range(self, m: re.Match[str]) -> None:
        self.price_min, self.price_max = sorted((_amount(m.group(1)), _amount(m.group(2))))

    def on_max(self, m: re.Match[str]) -> None:
        self.price_max = _amount(m.group(1))

    def on_min(self, m: re.Match[str]) -> None:
        self.price_min = _amount(m.group(1))

    def on_price(self, m: re.Match[str]) -> None:
        """A bare price: exactly that amount."""
        self.on_min(m)
        self.on_max(m)

    def on_stock(self, _: re.Match[str]) -> None:
        self.in_stock = True

    def filters(self) -> Filters:
        """What the phrases set, as `Filters`; a minimum above the maximum is read the other way round."""
        price_min, price_max = self.price_min, self.price_max
        if price_min is not None and price_max is not None and price_min > price_max:
            price_min, price_max = price_max, price_min
        return Filters(
            categories=self.categories,
            brands=self.brands,
            tags=self.tags,
            colours=self.colours,
            price_min=price_min,
            price_max=price_max,
            in_stock=self.in_stock,
        )


#: the filter phrases, taken out in this order (`from 10 to 50` is read as a range before `from 10` can be a minimum)
_PHRASES: tuple[tuple[re.Pattern[str], Callable[[_Reading, re.Match[str]], None]], ...] = (
    (_FIELD, _Reading.on_field),
    (_HASHTAG, _Reading.on_hashtag),
    (_BETWEEN, _Reading.on_range),
    (_RANGE, _Reading.on_range),
    (_MAX, _Reading.on_max),
    (_MIN, _Reading.on_min),
    (_PRICE_ONLY, _Reading.on_price),
    (_IN_STOCK, _Reading.on_stock),
)


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
