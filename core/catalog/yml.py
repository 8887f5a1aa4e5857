"""YML (Yandex Market Language) shop feeds, as Prom.ua, Rozetka and Kaspi export them, read as a stream.

`yml_catalog/shop` holds `currencies`, `categories` and then `offers/offer`: the small parts before
the offers (currencies, the category tree) are kept; each offer becomes a product (or a row error)
as soon as its closing tag is read and is then dropped, so a 500,000-offer feed does not sit in
memory. The parser refuses entity declarations and external references (billion laughs, XXE): the
feed is one `CatalogError` then, and nothing of it is indexed. Issue 15, first step: not yet wired
into the CLI or the server.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from visearch.core.catalog.html import html_to_text
from visearch.core.catalog.model import CatalogItem, CatalogRow, CatalogWarning, RowError
from visearch.core.catalog.records import parse_price, product_from_record
from visearch.core.domain import MAX_DESCRIPTION, MAX_IMAGES, MAX_TAG, MAX_TAGS
from visearch.core.errors import CatalogError

#: what a YML feed must look like, for messages
YML_SHAPE = "a YML catalog (<yml_catalog><shop>…<offers><offer>)"
#: how the full category path is joined in `extra["category_path"]`
CATEGORY_SEPARATOR = " > "


def read_yml(stream: BinaryIO, source: str, *, currency: str | None = None) -> Iterator[CatalogItem]:
    """Each `offer` of a YML feed as a product or a row error, read incrementally from a binary stream.

    `currency` is used for offers with no `currencyId` when the feed declares no base currency
    (`rate="1"`). Raises `CatalogError` (naming `source`) for malformed XML, for a document that is
    not a YML catalog, and for entity declarations or external references."""
    builder = _OfferLineBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    builder.expat = parser.parser
    feed = _FeedState(default_currency=currency)
    try:
        yield from _read_offers(iterparse(stream, events=("start", "end"), parser=parser), builder, feed, source)
    except ParseError as exc:
        raise CatalogError(f"{source}: the feed is not well-formed XML ({exc}); nothing was read from it") from exc
    except DefusedXmlException as exc:
        raise CatalogError(f"{source}: refused: {_refusal_reason(exc)}; nothing was read from it") from exc
    yield from feed.warnings()


class _OfferLineBuilder(TreeBuilder):
    """A tree builder that notes the line each `<offer>` starts on (the parser knows it only at that moment)."""

    def __init__(self) -> None:
        super().__init__()
        self.expat: Any = None
        self.offer_lines: deque[int] = deque()

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        if tag == "offer" and self.expat is not None:
            self.offer_lines.append(int(self.expat.CurrentLineNumber))
        return super().start(tag, attrs)


@dataclass
class _FeedState:
    """What the feed said before its offers: currencies and the category tree (small), plus what to warn about."""

    default_currency: str | None
    base_currency: str | None = None
    category_names: dict[str, str] = field(default_factory=dict)
    category_parents: dict[str, str] = field(default_factory=dict)
    category_paths: dict[str, list[str]] = field(default_factory=dict)
    unknown_categories: set[str] = field(default_factory=set)
    dropped_tags: int = 0
    offers: int = 0

    def currency_for(self, offer_currency: str) -> str | None:
        return offer_currency or self.base_currency or self.default_currency

    def category_path(self, category_id: str) -> list[str]:
        """Root-to-leaf category names of `category_id` ([] when the feed does not declare it)."""
        if not category_id:
            return []
        if category_id not in self.category_names:
            self.unknown_categories.add(category_id)
            return []
        if category_id not in self.category_paths:
            self.category_paths[category_id] = self._walk_up(category_id)
        return self.category_paths[category_id]

    def _walk_up(self, category_id: str) -> list[str]:
        path: list[str] = []
        seen: set[str] = set()
        current: str | None = category_id
        while current is not None and current in self.category_names and current not in seen:  # a cycle stops
            seen.add(current)
            path.append(self.category_names[current])
            current = self.category_parents.get(current)
        return [name for name in reversed(path) if name]

    def warnings(self) -> Iterator[CatalogWarning]:
        if self.unknown_categories:
            ids = ", ".join(sorted(self.unknown_categories)[:5])
            yield CatalogWarning(
                f"{len(self.unknown_categories)} categoryId value(s) are not declared in <categories> ({ids}); "
                "those offers have no category"
            )
        if self.dropped_tags:
            yield CatalogWarning(
                f"{self.dropped_tags} <param> value(s) were not kept as tags (longer than {MAX_TAG} characters "
                f"or past {MAX_TAGS} tags on an offer)"
            )


def _read_offers(
    events: Iterator[tuple[str, Element]], builder: _OfferLineBuilder, feed: _FeedState, source: str
) -> Iterator[CatalogItem]:
    """Walk the parse events: keep currencies and categories, turn each finished offer into an item, drop it."""
    open_elements: list[Element] = []
    for event, elem in events:
        if event == "start":
            if not open_elements and elem.tag != "yml_catalog":
                raise CatalogError(f"{source}: not {YML_SHAPE}: the root element is <{elem.tag}>")
            open_elements.append(elem)
            continue
        open_elements.pop()
        parent = open_elements[-1] if open_elements else None
        if elem.tag == "offer":
            line = builder.offer_lines.popleft() if builder.offer_lines else None
            if parent is not None and parent.tag == "offers":
                feed.offers += 1
                yield _offer_item(elem, line if line is not None else feed.offers, feed)
                elem.clear()
                parent.remove(elem)
        elif elem.tag == "currency" and parent is not None and parent.tag == "currencies":
            _note_currency(elem, feed)
        elif elem.tag == "category" and parent is not None and parent.tag == "categories":
            _note_category(elem, feed)
        if parent is not None and parent.tag in ("shop", "currencies", "categories"):
            parent.remove(elem)  # read already: what stays in the tree is only what is still open


def _note_currency(elem: Element, feed: _FeedState) -> None:
    """The currency with `rate="1"` is the shop's own: offers without `currencyId` are priced in it."""
    code = (elem.get("id") or "").strip()
    if code and (elem.get("rate") or "").strip() in ("1", "1.0", "1.00") and feed.base_currency is None:
        feed.base_currency = code


def _note_category(elem: Element, feed: _FeedState) -> None:
    category_id = (elem.get("id") or "").strip()
    if not category_id:
        return
    feed.category_names[category_id] = " ".join("".join(elem.itertext()).split())
    parent_id = (elem.get("parentId") or "").strip()
    if parent_id:
        feed.category_parents[category_id] = parent_id


def _offer_item(offer: Element, line: int, feed: _FeedState) -> CatalogRow | RowError:
    """One `<offer>` as a product, or every reason it cannot be one (no id, no name, no picture, a bad price)."""
    offer_id = (offer.get("id") or "").strip()
    pictures = list(dict.fromkeys(_texts(offer, "picture")))
    reasons: list[str] = [] if pictures else ["no <picture>"]
    old_price = _old_price(offer, reasons)
    path = feed.category_path(_text(offer, "categoryId"))
    record: dict[str, Any] = {
        "id": offer_id,
        "title": _title(offer),
        "description": _description(offer),
        "price": _text(offer, "price"),
        "currency": feed.currency_for(_text(offer, "currencyId")),
        "category": path[-1] if path else None,
        "brand": _text(offer, "vendor"),
        "tags": _tags(offer, feed),
        "group_id": (offer.get("group_id") or "").strip(),
        "url": _text(offer, "url"),
        "in_stock": _in_stock(offer),
        "images": pictures[:MAX_IMAGES],
        "category_path": CATEGORY_SEPARATOR.join(path) or None,
        "regular_price": old_price,
        "vendor_code": _text(offer, "vendorCode"),
    }
    result = product_from_record(line, record)
    if isinstance(result, RowError):
        return RowError(line, result.product_id, "; ".join([result.reason, *reasons]))
    if reasons:
        return RowError(line, offer_id or None, "; ".join(reasons))
    return result


def _text(elem: Element, tag: str) -> str:
    """The text of the first `tag` child, whitespace collapsed ("" when absent)."""
    child = elem.find(tag)
    return " ".join("".join(child.itertext()).split()) if child is not None else ""


def _texts(elem: Element, tag: str) -> list[str]:
    return [text for child in elem.findall(tag) if (text := "".join(child.itertext()).strip())]


def _title(offer: Element) -> str:
    """`name`, or for vendor.model offers `typePrefix vendor model` (the three parts YML builds a name from)."""
    name = _text(offer, "name")
    if name:
        return name
    return " ".join(
        part for part in (_text(offer, "typePrefix"), _text(offer, "vendor"), _text(offer, "model")) if part
    )


def _description(offer: Element) -> str:
    """The description as plain text (HTML tags dropped, entities unescaped), cut to the product's size cap."""
    child = offer.find("description")
    if child is None:
        return ""
    text = html_to_text("".join(child.itertext()))
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1].rstrip() + "…"


def _old_price(offer: Element, reasons: list[str]) -> float | None:
    """`oldprice` (Rozetka: `price_old`): the price before the discount; `price` is what the customer pays."""
    raw = _text(offer, "oldprice") or _text(offer, "price_old")
    try:
        return parse_price(raw, "oldprice")
    except ValueError as exc:
        reasons.append(str(exc))
        return None


def _in_stock(offer: Element) -> bool:
    """`available="true"` is in stock; `"false"` is not, nor is Prom.ua's `""` ("on order": nothing ships now, as
    Merchant's preorder/backorder); without the attribute a stock count of 0 is out of stock, anything else in."""
    available = offer.get("available")
    if available is not None:
        return available.strip().casefold() == "true"
    for tag in ("stock_quantity", "quantity_in_stock", "quantity"):
        count = _text(offer, tag)
        if count:
            return count not in ("0", "0.0")
    return True


def _tags(offer: Element, feed: _FeedState) -> list[str]:
    """Each `param` as `name: value unit`, so `--tag "Колір: червоний"` filters on it."""
    tags: list[str] = []
    for param in offer.findall("param"):
        name = " ".join((param.get("name") or "").split())
        value = " ".join("".join(param.itertext()).split())
        unit = " ".join((param.get("unit") or "").split())
        if not value:
            continue
        tag = f"{name}: {value}" if name else value
        tag = f"{tag} {unit}" if unit else tag
        if len(tag) > MAX_TAG or len(tags) >= MAX_TAGS:
            feed.dropped_tags += 1
            continue
        tags.append(tag)
    return tags


def _refusal_reason(exc: DefusedXmlException) -> str:
    if isinstance(exc, EntitiesForbidden):
        return (
            f"the feed declares the XML entity {exc.name!r}; entities are not expanded "
            "(they can blow up memory or read local files)"
        )
    if isinstance(exc, ExternalReferenceForbidden):
        return "the feed references an external resource; external references are not followed"
    return f"the feed uses an XML feature that is not allowed ({type(exc).__name__})"
