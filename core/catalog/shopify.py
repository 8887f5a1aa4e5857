"""Shopify stores' public `products.json` (`https://shop.example/products.json?limit=250&page=N`), page by page.

Each page is `{"products": [...]}`; a product has `id`, `title`, `handle`, `body_html` (HTML),
`vendor`, `product_type`, `tags` (a list; a comma-separated string in older payloads), `variants`
(`id`, `title`, `sku`, `price` as a decimal string, `compare_at_price`, `available`,
`option1`..`option3`, `featured_image` {`src`}), `images` ({`src`, `variant_ids`}) and `options`
({`name`, `values`}). Each variant becomes one product (a size or colour is what a customer buys);
the variants of one product share its `handle` as their `group_id`, so a search shows one card for
them. Each variant becomes a flat record for `product_from_record`, so the Product rules are the
CSV ones. Only one page is in memory at a time.

Product ids, stable across syncs (the same data gives the same ids, whatever the order of the
products or pages):

- a product with one variant: its `handle`;
- a product with several: the variant's `sku` when it is set and no other variant of the same
  product has it (and it is a valid id), else `handle` + "-" + the variant's `id`.

A product whose variants go from one to several changes ids (handle -> SKUs): its old product
is deleted by the next `sync`, the new ones are indexed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from visearch.core.catalog.html import html_to_text
from visearch.core.catalog.model import CatalogItem, CatalogRow, CatalogWarning, RowError
from visearch.core.catalog.records import KNOWN_COLUMNS, RESERVED_COLUMNS, json_type, parse_price, product_from_record
from visearch.core.domain import MAX_EXTRA_KEY, MAX_TAG, MAX_TAGS, product_id_problem
from visearch.core.errors import CatalogError

#: the variant title (and option value) of a product sold in one variant only
DEFAULT_TITLE = "Default Title"
#: extra keys the reader sets itself: an option named like one gets an `option_` prefix
_OWN_EXTRA = frozenset({"regular_price", "sku"})
_MAX_ID = 200


def shopify_page(data: bytes, source: str) -> list[dict[str, Any]]:
    """The products of one `products.json` page (an empty list: past the last page).

    Raises `CatalogError` naming `source` for bytes that are not JSON, or a JSON document that is
    not an object with a `products` list. The entries are not checked here: `read_shopify` reports
    one that is not a product object as a row error."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{source}: not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "expected a Shopify products.json page"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("products"), list):
        found = (
            f"an object with keys {', '.join(sorted(map(str, document))[:5]) or 'none'}"
            if isinstance(document, dict)
            else json_type(document)
        )
        raise CatalogError(f'{source}: not a Shopify products.json page: expected {{"products": [...]}}, got {found}')
    products: list[dict[str, Any]] = document["products"]
    return products


def read_shopify(
    pages: Iterable[list[dict[str, Any]]], source: str, *, currency: str | None = None, store_url: str | None = None
) -> Iterator[CatalogItem]:
    """Each variant of each product, page after page, as a product or a row error.

    The "line" of an item is the product's 1-based position in the whole feed (page 2's first
    product of 250 a page is 251); all variants of a product share it, and the reason of a row error
    names the product's handle (and the variant's id). products.json has no currency: prices take
    `currency`. With `store_url` (`https://shop.example`), each product links to
    `<store_url>/products/<handle>?variant=<id>`; without it, products have no url."""
    notes = _Notes()
    position = 0
    for page in pages:
        for product in page:
            position += 1
            yield from _product_items(product, position, currency, store_url, notes)
    yield from notes.warnings()


@dataclass
class _Notes:
    """What to tell about the feed as a whole once it is read."""

    dropped_tags: int = 0

    def warnings(self) -> Iterator[CatalogWarning]:
        if self.dropped_tags:
            yield CatalogWarning(
                f"{self.dropped_tags} Shopify tag(s) were not kept (longer than {MAX_TAG} characters "
                f"or past {MAX_TAGS} tags on a product)"
            )


@dataclass(frozen=True)
class _Shared:
    """What every variant of a product takes from the product."""

    handle: str
    title: str
    description: str
    vendor: str
    product_type: str
    tags: list[str]
    images: list[tuple[str, frozenset[str]]]  # src, the ids of the variants it shows (none: all of them)
    option_names: list[str]


def _product_items(
    product: object, line: int, currency: str | None, store_url: str | None, notes: _Notes
) -> Iterator[CatalogItem]:
    if not isinstance(product, dict):
        yield RowError(line, None, f"not a Shopify product: expected an object, got {json_type(product)}")
        return
    handle = _text(product.get("handle"))
    if not handle:
        shown = _text(product.get("id")) or _text(product.get("title")) or "?"
        yield RowError(line, None, f"product {shown!r}: missing handle (the id of its variants is made from it)")
        return
    variants = product.get("variants")
    if not isinstance(variants, list) or not variants:
        yield RowError(line, handle, f"handle {handle!r}: no variants (nothing to sell)")
        return
    tags, dropped = _capped_tags(_tags(product.get("tags")))
    notes.dropped_tags += dropped
    shared = _Shared(
        handle=handle,
        title=_text(product.get("title")),
        description=html_to_text(_text(product.get("body_html"))),
        vendor=_text(product.get("vendor")),
        product_type=_text(product.get("product_type")),
        tags=tags,
        images=[
            (src, frozenset(_text(v) for v in _items(image.get("variant_ids")) if _text(v)))
            for image in _objects(product.get("images"))
            if (src := _image_src(image))
        ],
        option_names=[_text(option.get("name")) for option in _objects(product.get("options"))],
    )
    for variant, product_id in zip(variants, variant_ids(handle, variants), strict=True):
        if not isinstance(variant, dict):
            yield RowError(line, handle, f"handle {handle!r}: a variant is {json_type(variant)}, not an object")
        elif product_id is None:
            yield RowError(line, handle, f"handle {handle!r}: a variant has neither a unique sku nor an id")
        else:
            yield _variant_product(variant, product_id, shared, line, currency, store_url, single=len(variants) == 1)


def variant_ids(handle: str, variants: list[Any]) -> list[str | None]:
    """The product id of each variant (None: it cannot have one), by the rule in the module's docstring."""
    if len(variants) == 1:
        return [handle]
    skus = [_text(v.get("sku")) if isinstance(v, dict) else "" for v in variants]
    counts = Counter(sku for sku in skus if sku)
    ids: list[str | None] = []
    for variant, sku in zip(variants, skus, strict=True):
        if sku and counts[sku] == 1 and len(sku) <= _MAX_ID and product_id_problem(sku) is None:
            ids.append(sku)
        else:
            variant_id = _text(variant.get("id")) if isinstance(variant, dict) else ""
            ids.append(f"{handle}-{variant_id}" if variant_id else None)
    return ids


def _variant_product(
    variant: dict[str, Any],
    product_id: str,
    shared: _Shared,
    line: int,
    currency: str | None,
    store_url: str | None,
    *,
    single: bool,
) -> CatalogRow | RowError:
    variant_id = _text(variant.get("id"))
    reasons: list[str] = []
    images = _variant_images(variant, variant_id, shared.images)
    if not images:
        reasons.append("missing image (images, featured_image)")
    price = _price(variant.get("price"), "price", reasons)
    compare_at = _price(variant.get("compare_at_price"), "compare_at_price", reasons)
    variant_title = _text(variant.get("title"))
    title = shared.title
    if title and variant_title and variant_title != DEFAULT_TITLE:
        title = f"{title} - {variant_title}"
    url = None
    if store_url:
        url = f"{store_url.rstrip('/')}/products/{quote(shared.handle, safe='%')}"
        url += f"?variant={quote(variant_id, safe='')}" if variant_id else ""
    available = variant.get("available")
    record: dict[str, Any] = {
        "id": product_id,
        "title": title,
        "description": shared.description,
        "url": url,
        "images": images,
        "price": price,
        "currency": currency,
        "brand": shared.vendor,
        "category": shared.product_type,
        "tags": shared.tags,
        "group_id": shared.handle,
        "in_stock": available if available is not None else True,
    }
    extra: dict[str, Any] = {}
    if compare_at is not None and price is not None and compare_at > price:
        extra["regular_price"] = compare_at
    sku = _text(variant.get("sku"))
    if sku:
        extra["sku"] = sku
    for number, name in enumerate(shared.option_names[:3], start=1):
        value = _text(variant.get(f"option{number}"))
        if value and value != DEFAULT_TITLE:
            extra[option_key(name, number, extra)] = value
    record.update(extra)
    result = product_from_record(line, record)
    if isinstance(result, RowError):
        reasons.insert(0, result.reason)
    if not reasons:
        return result
    who = f"handle {shared.handle!r}" + ("" if single or not variant_id else f", variant {variant_id}")
    return RowError(line, product_id, f"{who}: " + "; ".join(reasons))


def option_key(name: str, number: int, taken: dict[str, Any]) -> str:
    """An option's name as an extra field's key (`Color`, `Size`): spaces collapsed, at most the key cap;
    a name that is a product field or a key visearch writes (`Title`, `Price`, `Image`), or one already
    used, becomes `option_<name>`; no name at all, `option<N>`."""
    key = " ".join(name.split())[: MAX_EXTRA_KEY - len("option_")]
    if not key:
        return f"option{number}"
    lowered = key.casefold()
    if lowered in KNOWN_COLUMNS or lowered in RESERVED_COLUMNS or lowered in _OWN_EXTRA or key in taken:
        return f"option_{key}"
    return key


def _variant_images(variant: dict[str, Any], variant_id: str, images: list[tuple[str, frozenset[str]]]) -> list[str]:
    """The variant's own image first, then the product's images that show it or no variant in particular
    (an image tied to other variants only is theirs: a photo of the blue shirt must not find the red
    one); when that leaves nothing, all of the product's images. Each once."""
    featured = variant.get("featured_image")
    own = _image_src(featured) if isinstance(featured, dict) else ""
    chosen = [src for src, shows in images if not shows or variant_id in shows]
    if not own and not chosen:
        chosen = [src for src, _ in images]
    return list(dict.fromkeys([own, *chosen] if own else chosen))


def _image_src(image: dict[str, Any]) -> str:
    """An image's URL; Shopify's older protocol-relative `//cdn.shopify.com/...` gets https."""
    src = _text(image.get("src"))
    return f"https:{src}" if src.startswith("//") else src


def _price(value: object, name: str, reasons: list[str]) -> float | None:
    try:
        return parse_price(value, name)
    except ValueError as exc:
        reasons.append(str(exc))
        return None


def _tags(value: object) -> list[str]:
    """A list of tags, or the comma-separated string of older payloads; each once, in order."""
    items = value.split(",") if isinstance(value, str) else _items(value)
    return list(dict.fromkeys(text for item in items if (text := _text(item))))


def _capped_tags(tags: list[str]) -> tuple[list[str], int]:
    """The tags the Product accepts (at most MAX_TAGS of MAX_TAG characters), and how many were dropped."""
    kept = [tag for tag in tags if len(tag) <= MAX_TAG][:MAX_TAGS]
    return kept, len(tags) - len(kept)


def _objects(value: object) -> list[dict[str, Any]]:
    """The JSON objects in a list (anything else in it, or a value that is no list, is left out)."""
    return [item for item in _items(value) if isinstance(item, dict)]


def _items(value: object) -> list[Any]:
    """A JSON list's items; a value that is no list has none."""
    return value if isinstance(value, list) else []


def _text(value: object) -> str:
    """A JSON string or number as text (ids are numbers in products.json); anything else is no text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return ""
    return str(value).strip()
