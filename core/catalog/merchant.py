"""Google Merchant Center product feeds in XML (RSS 2.0 `rss/channel/item`, Atom `feed/entry`, `g:` attributes).

The same attributes make a Meta (Facebook/Instagram) catalog feed. The document is read as a
stream with defusedxml: entity declarations and external references are refused (a billion-laughs
bomb or an XXE is one `CatalogError`, nothing indexed), and each finished item is cleared and
dropped from its parent, so a 500,000-item feed never sits in memory. Each item becomes a flat
record for `product_from_record`, so the Product rules (size caps, ids, extras) are the CSV ones.
The text form (tab-separated or CSV, `merchant_table`) builds the same attribute values and goes
through the same `merchant_product`, so both forms give the same product for the same data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from visearch.core.catalog.html import html_to_text
from visearch.core.catalog.model import CatalogItem, CatalogRow, RowError
from visearch.core.catalog.records import parse_price, product_from_record
from visearch.core.errors import CatalogError

GOOGLE_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"

_ITEM_TAGS = frozenset({"item", f"{{{ATOM_NS}}}entry"})
_ITEM_PARENTS = frozenset({"channel", f"{{{ATOM_NS}}}feed"})
_ROOT_TAGS = frozenset({"rss", f"{{{ATOM_NS}}}feed"})

#: availability values (the current spelling and the older one with spaces) -> in stock now
AVAILABILITY = {
    "in_stock": True,
    "in stock": True,
    "available for order": True,  # retired Merchant value; Google read it as in stock
    "out_of_stock": False,
    "out of stock": False,
    "preorder": False,  # orders taken, nothing ships yet
    "pre-order": False,
    "backorder": False,  # orders taken, ships when restocked
}
#: `g:` attributes kept in the product's extra fields under the same name
EXTRA_ATTRIBUTES = (
    "color",
    "size",
    "gender",
    "material",
    "pattern",
    "age_group",
    "condition",
    "gtin",
    "mpn",
    "google_product_category",
)
_AMOUNT_AND_CURRENCY = re.compile(r"^\s*(?:(?P<pre>[A-Za-z]{3})\s+)?(?P<amount>.*?)(?:\s+(?P<post>[A-Za-z]{3}))?\s*$")


#: what both forms of a feed (XML items, text rows) are turned into: attribute name -> its values, in
#: order (`price`, `additional_image_link`; XML's plain RSS/Atom elements as `rss:title`, `atom:link`)
AttributeValues = Mapping[str, Sequence[str]]


def _first(values: AttributeValues, *names: str) -> str:
    """The first non-empty value among the names, in order of preference."""
    for name in names:
        for value in values.get(name, ()):
            if value:
                return value
    return ""


def _all(values: AttributeValues, name: str) -> list[str]:
    return [value for value in values.get(name, ()) if value]


class _LineRecordingTreeBuilder(TreeBuilder):
    """A TreeBuilder that notes the line each item starts on: iterparse itself reports no positions."""

    def __init__(self) -> None:
        super().__init__()
        self.expat: Any = None
        self.item_lines: dict[int, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        element = super().start(tag, attrs)
        if tag in _ITEM_TAGS and self.expat is not None:
            self.item_lines[id(element)] = int(self.expat.CurrentLineNumber)
        return element


def read_merchant_xml(stream: BinaryIO, source: str, *, currency: str | None = None) -> Iterator[CatalogItem]:
    """Each item of a Merchant RSS/Atom feed as a product or a row error; `currency` is for prices without one.

    Raises `CatalogError` for a feed that is not well-formed XML (with its line and column) or that
    declares entities or external references (refused outright: nothing from it is indexed)."""
    builder = _LineRecordingTreeBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    builder.expat = parser.parser
    position = 0
    stack: list[Element] = []
    try:
        for event, element in iterparse(stream, events=("start", "end"), parser=parser):
            if event == "start":
                if not stack and element.tag not in _ROOT_TAGS:
                    raise CatalogError(
                        f"{source}: not a Merchant feed: the document is <{element.tag}>, not RSS or Atom"
                    )
                stack.append(element)
                continue
            stack.pop()
            if element.tag not in _ITEM_TAGS:
                continue
            line = builder.item_lines.pop(id(element), None)
            parent = stack[-1] if stack else None
            if parent is None or parent.tag not in _ITEM_PARENTS:
                continue
            position += 1
            values = _item_values(element)
            element.clear()
            parent.remove(element)  # the finished item leaves the tree: memory stays flat
            yield merchant_product(values, line if line is not None else position, currency)
    except DefusedXmlException as exc:
        raise CatalogError(
            f"{source}: refused: the feed declares XML entities or external references ({type(exc).__name__}); "
            "a product feed needs neither, and expanding them could exhaust memory or read local files"
        ) from None
    except ParseError as exc:
        line, column = exc.position
        raise CatalogError(f"{source}: not well-formed XML at line {line}, column {column + 1}") from None


def _item_values(element: Element) -> dict[str, list[str]]:
    """The item's direct children as text, keyed by attribute name; Atom's `<link href>` gives its href."""
    values: dict[str, list[str]] = {}
    for child in element:
        name = _attribute_name(child.tag)
        if name is None:
            continue
        text = child.get("href", "") if name == "atom:link" else "".join(child.itertext())
        values.setdefault(name, []).append(text.strip())
    return values


def _attribute_name(tag: str) -> str | None:
    """`{g-namespace}price` -> `price`; RSS's plain `title` -> `rss:title`; Atom's -> `atom:title`."""
    if not tag.startswith("{"):
        return f"rss:{tag}"
    namespace, _, local = tag[1:].partition("}")
    if namespace == GOOGLE_NS:
        return local
    if namespace == ATOM_NS:
        return f"atom:{local}"
    return None


def merchant_product(values: AttributeValues, line: int, currency: str | None) -> CatalogRow | RowError:
    """One item's attribute values -> a product, the one mapping of the XML and the text forms (so the same
    data gives the same product in either); `line` is where the item starts, `currency` is for prices
    written without one. Problems `product_from_record` cannot see (image, price with currency,
    availability) are added to its reasons, so the report names them all at once."""
    reasons: list[str] = []
    images = _all(values, "image_link")[:1] + _all(values, "additional_image_link")
    if not images:
        reasons.append("missing image (g:image_link)")
    regular, regular_currency = _money(_first(values, "price"), "price", reasons)
    sale, sale_currency = _money(_first(values, "sale_price"), "sale_price", reasons)
    if sale is not None and not _sale_is_on(_first(values, "sale_price_effective_date")):
        sale = None
    in_stock = _availability(_first(values, "availability"), reasons)
    category_path = _first(values, "product_type") or _category_name(_first(values, "google_product_category"))
    record: dict[str, Any] = {
        "id": _first(values, "id"),
        "title": _first(values, "title", "rss:title", "atom:title"),
        "description": html_to_text(_first(values, "description", "rss:description", "atom:summary", "atom:content")),
        "url": _first(values, "link", "rss:link", "atom:link"),
        "images": images,
        "price": sale if sale is not None else regular,
        "currency": (sale_currency if sale is not None else regular_currency) or currency,
        "brand": _first(values, "brand"),
        "category": _leaf(category_path),
        "in_stock": in_stock,
        "group_id": _first(values, "item_group_id"),
    }
    extra: dict[str, Any] = {name: value for name in EXTRA_ATTRIBUTES if (value := _first(values, name))}
    if category_path and category_path != record["category"]:
        extra["category_path"] = category_path
    if sale is not None and regular is not None:
        extra["regular_price"] = regular
    if _first(values, "availability"):
        extra["availability"] = _first(values, "availability")
    record.update(extra)
    result = product_from_record(line, record)
    if not reasons:
        return result
    product_id = _first(values, "id") or None
    if isinstance(result, RowError):
        reasons.insert(0, result.reason)
    return RowError(line, product_id, "; ".join(reasons))


def _money(value: str, name: str, reasons: list[str]) -> tuple[float | None, str | None]:
    """`15.00 USD` (or `USD 15.00`, or a bare `15.00`) -> (15.0, "USD"); a bad amount adds a reason."""
    if not value:
        return None, None
    match = _AMOUNT_AND_CURRENCY.match(value)
    assert match is not None  # the pattern matches any string
    code = match["pre"] or match["post"]
    try:
        amount = parse_price(match["amount"], name)
    except ValueError as exc:
        reasons.append(str(exc))
        return None, None
    if amount is None:
        reasons.append(f"{name}: no amount in {value!r}")
    return amount, code.upper() if code else None


def _sale_is_on(period: str) -> bool:
    """`g:sale_price_effective_date` (`start/end`, ISO 8601): is now inside it? Unreadable or absent: yes."""
    if not period:
        return True
    start_text, _, end_text = period.partition("/")
    try:
        start = datetime.fromisoformat(start_text.strip()) if start_text.strip() else None
        end = datetime.fromisoformat(end_text.strip()) if end_text.strip() else None
    except ValueError:
        return True
    now = datetime.now(UTC)
    return (start is None or _aware(start) <= now) and (end is None or now < _aware(end))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _availability(value: str, reasons: list[str]) -> bool | None:
    """The Merchant availability value -> in stock now; absent -> None (the record's default, in stock)."""
    if not value:
        return None
    known = AVAILABILITY.get(" ".join(value.split()).casefold())
    if known is None:
        reasons.append(f"availability: unknown value {value!r} (in_stock, out_of_stock, preorder or backorder)")
    return known


def _category_name(google_category: str) -> str:
    """A Google product category given as a path is a category; its numeric id alone names nothing."""
    return "" if google_category.isdigit() else google_category


def _leaf(path: str) -> str:
    """`Apparel > Shoes > Sneakers` -> `Sneakers`."""
    return path.rsplit(">", 1)[-1].strip() if path else ""
