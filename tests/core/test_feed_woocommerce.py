"""WooCommerce's public Store API: prices in minor units, a variable product as one product, stable ids."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from visearch.core.catalog.model import Catalog, collect
from visearch.core.catalog.woocommerce import read_woocommerce, woocommerce_page
from visearch.core.domain import Product
from visearch.core.errors import CatalogError


def prices(price: str, regular: str, *, code: str = "EUR", minor: int = 2, **more: Any) -> dict[str, Any]:
    """The Store API's `prices` object: amounts as strings in minor units."""
    return {
        "price": price,
        "regular_price": regular,
        "sale_price": price,
        "price_range": None,
        "currency_code": code,
        "currency_symbol": "€",
        "currency_minor_unit": minor,
        "currency_decimal_separator": ".",
        "currency_thousand_separator": ",",
        "currency_prefix": "€",
        "currency_suffix": "",
        **more,
    }


def hoodie() -> dict[str, Any]:
    """A simple product on sale, written to the Store API's shape: HTML description, two categories,
    tags, an attribute with terms, a brand (newer stores), an entity in the name."""
    return {
        "id": 34,
        "name": "Hoodie &amp; Scarf set",
        "slug": "hoodie-scarf-set",
        "parent": 0,
        "type": "simple",
        "variation": "",
        "permalink": "https://shop.example.test/product/hoodie-scarf-set/",
        "sku": "HOODIE-1",
        "short_description": "<p>Warm.</p>",
        "description": "<p>Brushed <em>fleece</em>, kangaroo pocket.</p><p>Machine&nbsp;wash.</p>",
        "on_sale": True,
        "prices": prices("1299", "1599"),
        "price_html": "<del>15,99&nbsp;€</del> <ins>12,99&nbsp;€</ins>",
        "average_rating": "0",
        "review_count": 0,
        "images": [
            {
                "id": 57,
                "src": "https://shop.example.test/wp-content/uploads/hoodie.jpg",
                "thumbnail": "x",
                "name": "hoodie.jpg",
                "alt": "",
            },
            {
                "id": 58,
                "src": "https://shop.example.test/wp-content/uploads/hoodie-back.jpg",
                "name": "back",
                "alt": "",
            },
        ],
        "categories": [
            {"id": 20, "name": "Clothing", "slug": "clothing", "link": "https://shop.example.test/c/clothing/"},
            {
                "id": 21,
                "name": "Hoodies &amp; Sweaters",
                "slug": "hoodies",
                "link": "https://shop.example.test/c/hoodies/",
            },
        ],
        "tags": [{"id": 5, "name": "winter", "slug": "winter", "link": "x"}],
        "brands": [{"id": 9, "name": "Acme", "slug": "acme", "link": "x"}],
        "attributes": [
            {
                "id": 1,
                "name": "Color",
                "taxonomy": "pa_color",
                "has_variations": False,
                "terms": [{"id": 22, "name": "Grey", "slug": "grey", "default": False}],
            }
        ],
        "variations": [],
        "has_options": False,
        "is_purchasable": True,
        "is_in_stock": True,
        "is_on_backorder": False,
        "low_stock_remaining": None,
        "sold_individually": False,
        "add_to_cart": {"text": "Add to cart", "description": "x", "url": "?add-to-cart=34"},
        "extensions": {},
    }


def tee() -> dict[str, Any]:
    """A variable product without a SKU: its price is the cheapest variation's, `price_range` the span."""
    return {
        "id": 77,
        "name": "Футболка «Літо»",
        "slug": "futbolka-lito",
        "type": "variable",
        "permalink": "https://shop.example.test/product/futbolka-lito/",
        "sku": "",
        "short_description": "<p>Бавовна</p>",
        "description": "",
        "prices": prices("1800", "1800", code="UAH", price_range={"min_amount": "1800", "max_amount": "2200"}),
        "images": [{"id": 61, "src": "https://shop.example.test/wp-content/uploads/tee.jpg"}],
        "categories": [{"id": 30, "name": "Одяг", "slug": "odyag"}],
        "tags": [],
        "attributes": [
            {
                "id": 2,
                "name": "Розмір",
                "taxonomy": "pa_size",
                "has_variations": True,
                "terms": [{"id": 1, "name": "M", "slug": "m"}, {"id": 2, "name": "L", "slug": "l"}],
            }
        ],
        "variations": [
            {"id": 78, "attributes": [{"name": "Розмір", "value": "m"}]},
            {"id": 79, "attributes": [{"name": "Розмір", "value": "l"}]},
        ],
        "is_purchasable": True,
        "is_in_stock": False,
    }


def tea() -> dict[str, Any]:
    """Only the essentials, a currency without decimals, no brands key, nothing optional."""
    return {
        "id": 90,
        "name": "Sencha",
        "slug": "sencha",
        "sku": "TEA-1",
        "prices": {"price": "1500", "regular_price": "1500", "currency_minor_unit": 0},
        "images": [{"src": "https://shop.example.test/tea.jpg"}],
    }


def read(pages: list[list[dict[str, Any]]], currency: str | None = "JPY") -> Catalog:
    return collect("store-api", read_woocommerce(pages, "store-api", currency=currency))


def by_id(catalog: Catalog) -> dict[str, Product]:
    return {product.id: product for product in catalog.products}


def test_products_map_to_the_visearch_fields() -> None:
    pages = [woocommerce_page(json.dumps([hoodie(), tee()]).encode(), "page 1"), woocommerce_page(b"[]", "page 2")]
    catalog = read(pages)
    assert not catalog.errors and not catalog.warnings
    products = by_id(catalog)
    assert list(products) == ["HOODIE-1", "77"]  # the SKU, else the numeric id
    hood = products["HOODIE-1"]
    assert hood.title == "Hoodie & Scarf set"
    assert hood.description == "Brushed fleece, kangaroo pocket. Machine wash."
    assert hood.url == "https://shop.example.test/product/hoodie-scarf-set/"
    assert hood.images == [
        "https://shop.example.test/wp-content/uploads/hoodie.jpg",
        "https://shop.example.test/wp-content/uploads/hoodie-back.jpg",
    ]
    assert (hood.price, hood.currency, hood.in_stock) == (12.99, "EUR", True)  # "1299" cents
    assert (hood.brand, hood.category) == ("Acme", "Clothing")
    assert hood.tags == ["winter", "Color: Grey"]
    assert hood.extra == {"regular_price": 15.99, "categories": "Clothing | Hoodies & Sweaters"}
    shirt = products["77"]
    assert shirt.title == "Футболка «Літо»" and shirt.description == "Бавовна"  # the short description stands in
    assert (shirt.price, shirt.currency, shirt.in_stock) == (18.0, "UAH", False)
    assert shirt.group_id is None  # one product: the list endpoint has nothing per variation
    assert shirt.tags == ["Розмір: M", "Розмір: L"]
    assert shirt.category == "Одяг" and shirt.extra == {"max_price": 22.0}


def test_missing_optional_fields_and_a_currency_without_decimals() -> None:
    sencha = by_id(read([[tea()]]))["TEA-1"]
    assert (sencha.price, sencha.currency) == (1500.0, "JPY")  # no currency_code: the reader's currency
    assert (sencha.brand, sencha.category, sencha.tags, sencha.description, sencha.url) == (None, None, [], "", None)
    assert sencha.in_stock is True and sencha.extra == {}


def test_a_product_that_cannot_be_one_is_a_row_error_and_the_others_are_read() -> None:
    no_image = tea() | {"id": 91, "slug": "matcha", "sku": "TEA-2", "images": []}
    dollars = tea() | {
        "id": 92,
        "slug": "hojicha",
        "sku": "TEA-3",
        "prices": {"price": "12.99", "currency_minor_unit": 2},
    }
    nameless = tea() | {"id": 93, "slug": "", "sku": "", "name": ""}
    not_an_object: Any = None
    catalog = read([[hoodie(), no_image], [not_an_object, dollars, nameless, tea()]])
    assert list(by_id(catalog)) == ["HOODIE-1", "TEA-1"]
    errors = {(error.line, error.product_id): error.reason for error in catalog.errors}
    assert errors == {
        (2, "TEA-2"): "slug 'matcha': missing image (images)",
        (3, None): "not a WooCommerce product: expected an object, got null",
        (4, "TEA-3"): "slug 'hojicha': prices.price: expected a whole number of minor units (cents), got '12.99'",
        (5, "93"): "product 93: missing title",
    }  # the line is the product's position in the whole feed, across pages


def test_ids_are_stable_when_read_again_or_in_another_order() -> None:
    first = by_id(read([[hoodie(), tee(), tea()]]))
    again = by_id(read([copy.deepcopy([hoodie(), tee(), tea()])]))
    reordered = by_id(read([[tea()], [tee(), hoodie()]]))
    assert again == first and reordered == first


def test_a_sale_is_a_price_below_the_regular_one() -> None:
    full = hoodie() | {"prices": prices("1599", "1599")}
    assert "regular_price" not in by_id(read([[full]]))["HOODIE-1"].extra
    odd = by_id(read([[hoodie() | {"prices": prices("1599", "1299")}]]))["HOODIE-1"]
    assert odd.price == 15.99 and "regular_price" not in odd.extra  # a "regular" price below the price is no sale


def test_a_page_is_a_json_array() -> None:
    assert woocommerce_page(b"[]", "p") == []
    with pytest.raises(CatalogError, match=r"page 3: not valid JSON \(Expecting value at line 1, column 2\)"):
        woocommerce_page(b"[", "page 3")
    with pytest.raises(CatalogError, match=r"p: not a WooCommerce Store API products page: expected a JSON array"):
        woocommerce_page(b'{"products": []}', "p")
    # what WordPress answers where the Store API is off: its error is in the message
    with pytest.raises(CatalogError, match=r"got an object \(the store answered 'rest_no_route': No route"):
        woocommerce_page(b'{"code": "rest_no_route", "message": "No route was found", "data": {"status": 404}}', "p")
