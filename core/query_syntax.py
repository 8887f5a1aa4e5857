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

A currency sign or code next to a number is allowed (`under $50`, `under 50 sek`). The same
filters read in Ukrainian, Russian, Spanish, German, Portuguese and Arabic (`до 500 грн`, `menos
de 20`, `zwischen 10 und 50`, `أقل من ١٠٠`, `в наявності`, `categoría:zapatos`): the word tables
below. Everything else is kept as the words to search for. The parser never fails: what it cannot
read stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from visearch.core.domain import Filters

#: the words of each filter, by language (English, Ukrainian, Russian, Spanish, German, Portuguese,
#: Arabic): data, not code, so a language is added by adding its words. Matched case-insensitively,
#: each only as whole words and only next to an amount (`до 20`, never `до побачення`).
PRICE_AT_MOST: tuple[str, ...] = (
    *("under", "below", "less than", "cheaper than", "up to", "max", "at most", "<=", "<"),
    *("до", "дешевше", "дешевше ніж", "не дорожче", "менше", "менше ніж", "максимум"),
    *("дешевле", "дешевле чем", "не дороже", "менее", "меньше", "меньше чем"),
    *("menos de", "hasta", "máximo", "por menos de", "menor a", "menor que"),
    *("unter", "bis", "bis zu", "höchstens", "maximal", "weniger als", "günstiger als"),
    *("até", "abaixo de", "no máximo", "por até"),
    *("أقل من", "بأقل من", "أرخص من", "حتى", "بحد أقصى"),
)
PRICE_AT_LEAST: tuple[str, ...] = (
    *("over", "above", "more than", "from", "min", "at least", ">=", ">"),
    *("від", "дорожче", "дорожче ніж", "більше", "більше ніж", "понад", "мінімум"),
    *("от", "дороже", "дороже чем", "более", "больше", "больше чем", "свыше", "минимум"),
    *("más de", "desde", "mínimo", "mayor a", "mayor que", "por encima de"),
    *("über", "ab", "mindestens", "mehr als", "teurer als"),
    *("acima de", "mais de", "a partir de", "no mínimo"),
    *("أكثر من", "بأكثر من", "فوق", "بحد أدنى"),
)
#: `<first> 10 <second> 50`
PRICE_BETWEEN: tuple[tuple[str, str], ...] = (
    ("between", "and"),
    ("from", "to"),
    ("від", "до"),
    ("з", "до"),
    ("от", "до"),
    ("с", "до"),
    ("entre", "y"),
    ("entre", "e"),
    ("de", "a"),
    ("desde", "hasta"),
    ("zwischen", "und"),
    ("von", "bis"),
    ("بين", "و"),
    ("من", "إلى"),
    ("من", "الى"),
)
IN_STOCK: tuple[str, ...] = (
    *("in stock", "in-stock", "in:stock", "available"),
    *("в наявності", "у наявності", "є в наявності"),
    *("в наличии", "есть в наличии"),
    *("disponible", "disponibles", "en stock", "hay stock"),
    *("auf lager", "lagernd", "verfügbar", "vorrätig"),
    *("em estoque", "disponível", "disponíveis"),
    *("متوفر", "متوفرة", "متاح", "متاحة"),
)
#: currency signs and words a customer writes beside an amount (consumed with it)
CURRENCIES: tuple[str, ...] = (
    *("$", "€", "£", "¥", "₽", "₴", "r$", "kr", "zł"),
    *("sek", "usd", "eur", "gbp", "rub", "nok", "dkk", "uah", "brl", "pln", "sar", "aed", "egp"),
    *("грн", "грн.", "гривень", "гривні", "гривня", "гривен"),
    *("руб", "руб.", "р.", "рублей", "рубля", "рубль", "рублів"),
    *("євро", "евро", "euro", "euros", "dollar", "dollars", "dólares", "доларів", "долларов"),
    *("reais", "real"),
    *("دولار", "ريال", "درهم", "جنيه", "يورو"),
)
#: field prefixes in every language, by the filter they set
FIELD_NAMES: dict[str, str] = {
    **dict.fromkeys(("category", "cat", "категорія", "категория", "categoría", "categoria", "kategorie"), "category"),
    **dict.fromkeys(("فئة", "الفئة"), "category"),
    **dict.fromkeys(("brand", "бренд", "марка", "marca", "marke", "علامة", "الماركة"), "brand"),
    **dict.fromkeys(("tag", "тег", "мітка", "метка", "etiqueta", "schlagwort", "وسم"), "tag"),
    **dict.fromkeys(("colour", "color", "колір", "цвет", "cor", "farbe", "لون"), "colour"),
}
#: digits of other scripts read as ASCII (Arabic-Indic and Persian), the Arabic decimal and thousands signs
_DIGITS = str.maketrans(
    {**{chr(0x660 + i): str(i) for i in range(10)}, **{chr(0x6F0 + i): str(i) for i in range(10)}, "٫": ",", "٬": ""}
)
#: direction marks a right-to-left keyboard may leave between words
_MARKS = dict.fromkeys(map(ord, "\u200e\u200f\u061c"), " ")


def _words(phrases: tuple[str, ...]) -> str:
    """An alternation of whole phrases, longest first (`менше ніж` before `менше`), spaces as any space."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    return "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)


#: an amount: `20`, `12,90`, `1 234,50`, `1.234,50` (groups of three after a space, dot or comma)
_NUMBER = r"(\d+(?:[ .,]\d{3})*(?:[.,]\d{1,2})?)"
_CURRENCY = rf"(?:{_words(CURRENCIES)})?"
_AMOUNT = rf"{_CURRENCY}\s?{_NUMBER}\s?{_CURRENCY}"

_FIELD = re.compile(rf"""(?<!\S)({_words(tuple(FIELD_NAMES))}):\s?(?:"([^"]+)"|'([^']+)'|(\S+))""", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<!\S)#([^\s#]+)")
_RANGE = re.compile(rf"(?<!\S)(?:price:\s?)?{_AMOUNT}\s?(?:-|–|\.\.|to)\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_BETWEEN = re.compile(
    "|".join(
        rf"(?<!\S)(?:{_words((first,))})\s+{_AMOUNT}\s+(?:{_words((second,))})\s+{_AMOUNT}(?!\S)"
        for first, second in PRICE_BETWEEN
    ),
    re.IGNORECASE,
)
_MAX = re.compile(rf"(?<!\S)(?:{_words(PRICE_AT_MOST)})\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_MIN = re.compile(rf"(?<!\S)(?:{_words(PRICE_AT_LEAST)})\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_PRICE_ONLY = re.compile(rf"(?<!\S)price:\s?{_AMOUNT}(?!\S)", re.IGNORECASE)
_IN_STOCK = re.compile(rf"(?<!\S)(?:{_words(IN_STOCK)})(?!\S)", re.IGNORECASE)
#: a message longer than this is read as words only past it (a chat message is far shorter)
MAX_MESSAGE_CHARS = 2000


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
    """`12,90` and `12.90` alike; `1 234,50` and `1.234,50` (thousands grouped) as 1234.5."""
    digits = value.replace(" ", "")
    if "," in digits and "." in digits:  # the last sign is the decimal one
        decimal, grouping = (",", ".") if digits.rfind(",") > digits.rfind(".") else (".", ",")
        digits = digits.replace(grouping, "").replace(decimal, ".")
    elif digits.count(",") + digits.count(".") > 1:  # 1.234.567: only grouping
        digits = digits.replace(",", "").replace(".", "")
    else:
        digits = digits.replace(",", ".")
    return min(float(digits), MAX_AMOUNT)


def parse_query_text(message: str) -> ParsedQuery:
    """Split a message into search words and `Filters`; `understood` lists the filter phrases found."""
    text = (message or "").translate(_DIGITS).translate(_MARKS)
    head, tail = text[:MAX_MESSAGE_CHARS], text[MAX_MESSAGE_CHARS:]
    reading = _Reading(text=" ".join(head.split()))
    for pattern, handler in _PHRASES:
        reading.take(pattern, handler)
    reading.text = f"{reading.text} {tail}"
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
        lists = {"category": self.categories, "brand": self.brands, "tag": self.tags, "colour": self.colours}
        lists[FIELD_NAMES[m.group(1).lower()]].append(value)

    def on_hashtag(self, m: re.Match[str]) -> None:
        self.tags.append(m.group(1))

    def on_range(self, m: re.Match[str]) -> None:
        low, high = (group for group in m.groups() if group is not None)  # one pair per language's wording
        self.price_min, self.price_max = sorted((_amount(low), _amount(high)))

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
