"""WooCommerce stores' public Store API (`/wp-json/wc/store/v1/products?per_page=100&page=N`), page by page.

Each page is a JSON array of products: `id`, `name`, `slug`, `permalink`, `sku`, `type`
(`simple`, `variable`, ...), `description` and `short_description` (HTML), `prices` (`price`,
`regular_price`, `sale_price` as strings in the currency's minor units, with `currency_code` and
`currency_minor_unit`: `"1299"` with minor unit 2 is 12.99; a variable product adds
`price_range`), `images` ({`src`}), `categories` and `tags` ({`name`}), `brands` (newer stores),
`attributes` ({`name`, `terms` [{`name`}]}), `variations` ({`id`, `attributes`}), `is_in_stock`
and `is_purchasable`. Each product becomes a flat record for `product_from_record`, so the
Product rules are the CSV ones. Only one page is in memory at a time.

A variable product is one product: the list endpoint gives no price, image or stock per
variation, so there is nothing to tell its variations apart by (its price is the lowest
variation's, `prices.price`). Its product id is its `sku` when set (WooCommerce keeps SKUs unique
in a store), else its numeric `id` as text: both stay the same across syncs and whatever the order
of the products or pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from visearch.core.catalog.html import html_to_text
from visearch.core.catalog.model import CatalogItem, CatalogRow, CatalogWarning, RowError
from visearch.core.catalog.records import json_type, parse_price, product_from_record
from visearch.core.domain import MAX_TAG, MAX_TAGS, product_id_problem
from visearch.core.errors import CatalogError

#: how several category names are joined in `extra["categories"]`
CATEGORY_SEPARATOR = " | "
#: the Store API always sends `currency_minor_unit`; WooCommerce's default number of decimals otherwise
DEFAULT_MINOR_UNIT = 2
_MAX_MINOR_UNIT = 8
_MAX_ID = 200


def woocommerce_page(data: bytes, source: str) -> list[dict[str, Any]]:
    """The products of one Store API page (an empty list: past the last page).

    Raises `CatalogError` naming `source` for bytes that are not JSON, or a JSON document that is
    not an array. The entries are not checked here: `read_woocommerce` reports one that is not a
    product object as a row error."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{source}: not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "expected a WooCommerce Store API products page"
        ) from None
    if not isinstance(document, list):
        hint = ""
        if isinstance(document, dict) and "code" in document:  # the WordPress REST API's error object
            hint = f" (the store answered {str(document.get('code'))!r}: {str(document.get('message', ''))[:200]})"
        raise CatalogError(
            f"{source}: not a WooCommerce Store API products page: expected a JSON array of products, "
            f"got {'an object' if isinstance(document, dict) else json_type(document)}{hint}"
        )
    products: list[dict[str, Any]] = document
    return products


def read_woocommerce(
    pages: Iterable[list[dict[str, Any]]], source: str, *, currency: str | None = None
) -> Iterator[CatalogItem]:
    """Each product, page after page, as a product or a row error.

    The "line" of an item is its 1-based position in the whole feed (page 2's first product of 100 a
    page is 101); the reason of a row error names the product's slug. A price takes its
    `prices.currency_code`, else `currency`."""
    notes = _Notes()
    position = 0
    for page in pages:
        for product in page:
            position += 1
            yield _product(product, position, currency, notes)
    yield from notes.warnings()


@dataclass
class _Notes:
    """What to tell about the feed as a whole once it is read."""

    dropped_tags: int = 0

    def warnings(self) -> Iterator[CatalogWarning]:
        if self.dropped_tags:
            yield CatalogWarning(
                f"{self.dropped_tags} WooCommerce tag(s) or attribute term(s) were not kept (longer than "
                f"{MAX_TAG} characters or past {MAX_TAGS} tags on a product)"
            )


def product_id(product: dict[str, Any]) -> str:
    """The rule in the module's docstring: the `sku` when set (and a valid id), else the numeric `id`."""
    sku = _text(product.get("sku"))
    if sku and len(sku) <= _MAX_ID and product_id_problem(sku) is None:
        return sku
    return _text(product.get("id"))


def _product(product: object, line: int, currency: str | None, notes: _Notes) -> CatalogRow | RowError:
    if not isinstance(product, dict):
        return RowError(line, None, f"not a WooCommerce product: expected an object, got {json_type(product)}")
    slug = _text(product.get("slug"))
    reasons: list[str] = []
    images = list(dict.fromkeys(src for image in _objects(product.get("images")) if (src := _image_src(image))))
    if not images:
        reasons.append("missing image (images)")
    prices = product.get("prices")
    prices = prices if isinstance(prices, dict) else {}
    minor_unit = _minor_unit(prices.get("currency_minor_unit"), reasons)
    price = _amount(prices.get("price"), "price", minor_unit, reasons)
    regular = _amount(prices.get("regular_price"), "regular_price", minor_unit, reasons)
    price_range = prices.get("price_range")
    highest = (
        _amount(price_range.get("max_amount"), "price_range.max_amount", minor_unit, reasons)
        if isinstance(price_range, dict)
        else None
    )
    categories = [name for item in _objects(product.get("categories")) if (name := _name(item))]
    brands = [name for item in _objects(product.get("brands")) if (name := _name(item))]
    tags, dropped = _capped_tags([*_tag_names(product), *_attribute_tags(product)])
    notes.dropped_tags += dropped
    in_stock = product.get("is_in_stock")
    record: dict[str, Any] = {
        "id": product_id(product),
        "title": html_to_text(_text(product.get("name"))),
        "description": html_to_text(_text(product.get("description")))
        or html_to_text(_text(product.get("short_description"))),
        "url": _text(product.get("permalink")),
        "images": images,
        "price": price,
        "currency": _text(prices.get("currency_code")) or currency,
        "brand": brands[0] if brands else "",
        "category": categories[0] if categories else "",
        "tags": tags,
        "in_stock": in_stock if in_stock is not None else True,
    }
    extra: dict[str, Any] = {}
    if price is not None and regular is not None and price < regular:
        extra["regular_price"] = regular
    if price is not None and highest is not None and highest > price:
        extra["max_price"] = highest  # a variable product's dearest variation
    if len(categories) > 1:
        extra["categories"] = CATEGORY_SEPARATOR.join(categories)
    if product.get("is_purchasable") is False:
        extra["purchasable"] = False
    record.update(extra)
    result = product_from_record(line, record)
    if isinstance(result, RowError):
        reasons.insert(0, result.reason)
    if not reasons:
        return result
    who = f"slug {slug!r}" if slug else f"product {_text(product.get('id')) or '?'}"
    return RowError(line, record["id"] or None, f"{who}: " + "; ".join(reasons))


def _minor_unit(value: object, reasons: list[str]) -> int:
    """`currency_minor_unit`: how many decimals the amounts hide (2 for EUR, 0 for JPY)."""
    if value is None:
        return DEFAULT_MINOR_UNIT
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_MINOR_UNIT:
        reasons.append(f"prices.currency_minor_unit: expected a whole number 0 to {_MAX_MINOR_UNIT}, got {value!r}")
        return DEFAULT_MINOR_UNIT
    return value


def _amount(value: object, name: str, minor_unit: int, reasons: list[str]) -> float | None:
    """An amount in minor units (`"1299"`) as a price (12.99 with minor unit 2); empty: no price."""
    try:
        amount = parse_price(value, f"prices.{name}")
    except ValueError as exc:
        reasons.append(str(exc))
        return None
    if amount is None:
        return None
    if not amount.is_integer():
        reasons.append(f"prices.{name}: expected a whole number of minor units (cents), got {value!r}")
        return None
    return amount / float(10**minor_unit)  # exact integers divided: the nearest float to the decimal price


def _tag_names(product: dict[str, Any]) -> list[str]:
    return [name for item in _objects(product.get("tags")) if (name := _name(item))]


def _attribute_tags(product: dict[str, Any]) -> list[str]:
    """Each attribute term as `Name: term` (`Color: Blue`), the form `--tag` filters on."""
    tags = []
    for attribute in _objects(product.get("attributes")):
        name = _name(attribute)
        for term in _objects(attribute.get("terms")):
            if value := _name(term):
                tags.append(f"{name}: {value}" if name else value)
    return tags


def _capped_tags(tags: list[str]) -> tuple[list[str], int]:
    """The tags the Product accepts (each once, at most MAX_TAGS of MAX_TAG characters), and how many were dropped."""
    unique = list(dict.fromkeys(tags))
    kept = [tag for tag in unique if len(tag) <= MAX_TAG][:MAX_TAGS]
    return kept, len(unique) - len(kept)


def _name(item: dict[str, Any]) -> str:
    """A category's, tag's, brand's, attribute's or term's name: the Store API escapes HTML in them (`&amp;`)."""
    return html_to_text(_text(item.get("name")))


def _image_src(image: dict[str, Any]) -> str:
    src = _text(image.get("src"))
    return f"https:{src}" if src.startswith("//") else src


def _objects(value: object) -> list[dict[str, Any]]:
    """The JSON objects in a list (anything else in it, or a value that is no list, is left out)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: object) -> str:
    """A JSON string or number as text (ids are numbers); anything else is no text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return str(value).strip()
