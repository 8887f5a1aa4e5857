"""Shopify's public products.json: each variant a product, variants grouped by handle, ids stable across syncs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from visearch.core.catalog.model import Catalog, collect
from visearch.core.catalog.shopify import option_key, read_shopify, shopify_page
from visearch.core.domain import Product
from visearch.core.errors import CatalogError

STORE = "https://shop.example.test"


def tee() -> dict[str, Any]:
    """A product in three variants, written to products.json's shape: two with their own SKU and photo, one
    without a SKU; the flat-lay photo shows no variant in particular (protocol-relative, as older payloads)."""
    return {
        "id": 7001,
        "title": "Organic Tee",
        "handle": "organic-tee",
        "body_html": "<p>Soft <strong>organic</strong> cotton &amp; a relaxed fit.</p><ul><li>Machine wash</li></ul>",
        "published_at": "2024-05-01T10:00:00-04:00",
        "created_at": "2024-05-01T10:00:00-04:00",
        "updated_at": "2024-06-01T10:00:00-04:00",
        "vendor": "Acme Apparel",
        "product_type": "T-Shirts",
        "tags": ["cotton", "summer"],
        "variants": [
            {
                "id": 41,
                "title": "Red / M",
                "option1": "Red",
                "option2": "M",
                "option3": None,
                "sku": "TEE-RED-M",
                "requires_shipping": True,
                "taxable": True,
                "featured_image": {
                    "id": 91,
                    "product_id": 7001,
                    "src": "https://cdn.test/tee-red.jpg",
                    "variant_ids": [41],
                },
                "available": True,
                "price": "19.99",
                "grams": 180,
                "compare_at_price": "24.99",
                "position": 1,
                "product_id": 7001,
            },
            {
                "id": 42,
                "title": "Blue / M",
                "option1": "Blue",
                "option2": "M",
                "option3": None,
                "sku": "TEE-BLUE-M",
                "featured_image": {
                    "id": 92,
                    "product_id": 7001,
                    "src": "https://cdn.test/tee-blue.jpg",
                    "variant_ids": [42],
                },
                "available": False,
                "price": "19.99",
                "compare_at_price": None,
                "position": 2,
                "product_id": 7001,
            },
            {
                "id": 43,
                "title": "Green / L",
                "option1": "Green",
                "option2": "L",
                "option3": None,
                "sku": "",
                "featured_image": None,
                "available": True,
                "price": "21.00",
                "compare_at_price": "19.00",  # lower than the price: not a sale
                "position": 3,
                "product_id": 7001,
            },
        ],
        "images": [
            {"id": 91, "position": 1, "product_id": 7001, "variant_ids": [41], "src": "https://cdn.test/tee-red.jpg"},
            {"id": 92, "position": 2, "product_id": 7001, "variant_ids": [42], "src": "https://cdn.test/tee-blue.jpg"},
            {"id": 93, "position": 3, "product_id": 7001, "variant_ids": [], "src": "//cdn.test/tee-flat.jpg"},
        ],
        "options": [
            {"name": "Color", "position": 1, "values": ["Red", "Blue", "Green"]},
            {"name": "Size", "position": 2, "values": ["M", "L"]},
        ],
    }


def mug() -> dict[str, Any]:
    """One variant ("Default Title"), a non-ASCII title, tags as the comma-separated string of older payloads."""
    return {
        "id": 7002,
        "title": "Кружка «Ранок»",
        "handle": "kruzhka-ranok",
        "body_html": "Порцеляна, 350&nbsp;мл",
        "vendor": "Глина",
        "product_type": "Посуд",
        "tags": "kitchen, gift ,",
        "variants": [
            {
                "id": 51,
                "title": "Default Title",
                "option1": "Default Title",
                "sku": "MUG-1",
                "price": "9.50",
                "available": True,
                "featured_image": None,
            }
        ],
        "images": [{"id": 95, "src": "https://cdn.test/mug.jpg", "variant_ids": []}],
        "options": [{"name": "Title", "position": 1, "values": ["Default Title"]}],
    }


def bare() -> dict[str, Any]:
    """Only what a product cannot do without: no vendor, type, tags, options, description, availability."""
    return {
        "id": 7003,
        "title": "Plain Card",
        "handle": "plain-card",
        "variants": [{"id": 61, "title": "Default Title", "price": "2.00"}],
        "images": [{"src": "https://cdn.test/card.jpg"}],
    }


def poster() -> dict[str, Any]:
    """A product without any image: it cannot be found by photo."""
    return {
        "id": 7004,
        "title": "Poster",
        "handle": "poster",
        "variants": [{"id": 71, "title": "Default Title", "price": "5.00", "available": True}],
        "images": [],
    }


def read(pages: list[list[dict[str, Any]]], store_url: str | None = STORE) -> Catalog:
    return collect("products.json", read_shopify(pages, "products.json", currency="USD", store_url=store_url))


def by_id(catalog: Catalog) -> dict[str, Product]:
    return {product.id: product for product in catalog.products}


def page_bytes(products: list[dict[str, Any]]) -> bytes:
    return json.dumps({"products": products}, ensure_ascii=False).encode()


def test_each_variant_is_a_product_and_the_variants_share_the_handle_as_group() -> None:
    catalog = read([shopify_page(page_bytes([tee(), mug()]), "page 1"), shopify_page(page_bytes([bare()]), "page 2")])
    assert not catalog.errors and not catalog.warnings
    products = by_id(catalog)
    # SKUs where set (and unique in the product), else handle-variant id; one variant: the handle
    assert list(products) == ["TEE-RED-M", "TEE-BLUE-M", "organic-tee-43", "kruzhka-ranok", "plain-card"]
    assert {products[pid].group_id for pid in ("TEE-RED-M", "TEE-BLUE-M", "organic-tee-43")} == {"organic-tee"}
    red = products["TEE-RED-M"]
    assert red.title == "Organic Tee - Red / M"
    assert red.description == "Soft organic cotton & a relaxed fit. Machine wash"
    assert red.url == f"{STORE}/products/organic-tee?variant=41"
    # its own photo first, then the product's photos that are not another variant's
    assert red.images == ["https://cdn.test/tee-red.jpg", "https://cdn.test/tee-flat.jpg"]
    assert (red.price, red.currency, red.in_stock) == (19.99, "USD", True)
    assert (red.brand, red.category, red.tags) == ("Acme Apparel", "T-Shirts", ["cotton", "summer"])
    assert red.extra == {"regular_price": 24.99, "sku": "TEE-RED-M", "Color": "Red", "Size": "M"}
    blue = products["TEE-BLUE-M"]
    assert blue.images == ["https://cdn.test/tee-blue.jpg", "https://cdn.test/tee-flat.jpg"]
    assert blue.in_stock is False and "regular_price" not in blue.extra
    green = products["organic-tee-43"]
    assert green.images == ["https://cdn.test/tee-flat.jpg"]
    assert (green.price, green.extra) == (21.0, {"Color": "Green", "Size": "L"})  # compare_at below price: no sale


def test_a_single_variant_product_and_missing_optional_fields() -> None:
    products = by_id(read([[mug(), bare()]]))
    mug_product = products["kruzhka-ranok"]
    assert mug_product.title == "Кружка «Ранок»"  # no "Default Title" appended
    assert mug_product.description == "Порцеляна, 350 мл"
    assert mug_product.tags == ["kitchen", "gift"]
    assert mug_product.group_id == "kruzhka-ranok" and mug_product.url == f"{STORE}/products/kruzhka-ranok?variant=51"
    assert mug_product.extra == {"sku": "MUG-1"}  # the "Title: Default Title" option is no information
    card = products["plain-card"]
    assert (card.brand, card.category, card.tags, card.description) == (None, None, [], "")
    assert card.in_stock is True and card.extra == {}  # no `available`: in stock
    assert by_id(read([[bare()]], store_url=None))["plain-card"].url is None


def test_a_product_that_cannot_be_one_is_a_row_error_and_the_others_are_read() -> None:
    no_variants = {"id": 7005, "title": "Ghost", "handle": "ghost", "variants": [], "images": []}
    no_handle = {"id": 7006, "title": "Nameless", "variants": [{"id": 1, "price": "1.00"}]}
    bad_price = bare() | {"handle": "bad-price", "variants": [{"id": 62, "price": "free"}]}
    catalog = read([[tee(), poster()], ["not a product", no_variants], [no_handle, bad_price, mug()]])
    assert sorted(by_id(catalog)) == sorted(["TEE-RED-M", "TEE-BLUE-M", "organic-tee-43", "kruzhka-ranok"])
    errors = {(error.line, error.product_id): error.reason for error in catalog.errors}
    assert errors == {
        (2, "poster"): "handle 'poster': missing image (images, featured_image)",
        (3, None): "not a Shopify product: expected an object, got a string",
        (4, "ghost"): "handle 'ghost': no variants (nothing to sell)",
        (5, None): "product '7006': missing handle (the id of its variants is made from it)",
        (6, "bad-price"): "handle 'bad-price': price: not a number ('free')",
    }  # the line is the product's position in the whole feed, across pages


def test_ids_are_stable_when_read_again_or_in_another_order() -> None:
    products = [tee(), mug(), bare()]
    first = by_id(read([products]))
    again = by_id(read([copy.deepcopy(products)]))
    reordered = by_id(read([[bare()], [mug(), tee()]]))  # other pages, other order
    assert again == first and reordered == first


def test_a_sku_repeated_inside_a_product_falls_back_to_handle_and_variant_id() -> None:
    product = tee()
    product["variants"][1]["sku"] = "TEE-RED-M"  # two variants with one SKU: neither may take it
    assert sorted(by_id(read([[product]]))) == ["organic-tee-41", "organic-tee-42", "organic-tee-43"]


def test_option_names_become_valid_extra_keys() -> None:
    assert option_key("Color", 1, {}) == "Color"
    assert option_key("  Material   Type ", 1, {}) == "Material Type"
    assert option_key("Price", 1, {}) == "option_Price"  # a product field's name would overwrite the field
    assert option_key("image", 2, {}) == "option_image"
    assert option_key("product_id", 2, {}) == "option_product_id"  # a key the indexer writes
    assert option_key("", 3, {}) == "option3"
    assert len(option_key("x" * 300, 1, {})) <= 100
    product = bare() | {
        "options": [{"name": "Price", "values": ["Low"]}],
        "variants": [{"id": 61, "price": "2.00", "option1": "Low"}],
    }
    assert by_id(read([[product]]))["plain-card"].extra == {"option_Price": "Low"}


def test_too_many_tags_are_dropped_with_one_warning() -> None:
    product = bare() | {"tags": [f"tag-{n}" for n in range(60)] + ["x" * 101]}
    catalog = read([[product]])
    assert catalog.products[0].tags == [f"tag-{n}" for n in range(50)]
    assert catalog.warnings == [
        "11 Shopify tag(s) were not kept (longer than 100 characters or past 50 tags on a product)"
    ]


def test_a_page_is_a_products_object() -> None:
    assert shopify_page(b'{"products": []}', "p") == []
    with pytest.raises(CatalogError, match=r"page 2: not valid JSON \(Expecting .* at line 1, column 15\)"):
        shopify_page(b'{"products": [', "page 2")
    with pytest.raises(
        CatalogError, match=r'p: not a Shopify products.json page: expected \{"products": \[...\]\}, got a list'
    ):
        shopify_page(b"[]", "p")
    with pytest.raises(CatalogError, match=r"got an object with keys product"):
        shopify_page(b'{"product": {"id": 1}}', "p")
    with pytest.raises(CatalogError, match=r"not a Shopify products.json page"):
        shopify_page(b'{"products": {"id": 1}}', "p")
    with pytest.raises(CatalogError, match=r"p: not UTF-8 JSON"):
        shopify_page('{"products": ["é"]}'.encode("latin-1"), "p")
