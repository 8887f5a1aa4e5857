"""The same four sample products written as each feed format a shop publishes, following each
format's published shape, plus their photos: what the feed tests serve from a fake shop."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
SAMPLE_IDS = ("banana", "granny-smith", "arla-standard-milk", "tropicana-apple-juice")


@dataclass(frozen=True)
class Item:
    """One product as the shop knows it; `image` is a path on the shop's server (/img/...)."""

    id: str
    title: str
    description: str  # HTML
    price: float
    in_stock: bool
    category: str
    image: str
    photo: Path  # the bytes served at `image`


def sample_items() -> list[Item]:
    rows = {r["id"]: r for r in csv.DictReader((SAMPLE / "catalog.csv").open(encoding="utf-8"))}
    return [
        Item(
            id=pid,
            title=rows[pid]["title"],
            description=f"<p>{escape(rows[pid]['description'])}</p>",
            price=float(rows[pid]["price"]),
            in_stock=rows[pid]["in_stock"] == "true",
            category=rows[pid]["category"],
            image=f"/img/{pid}.jpg",
            photo=SAMPLE / rows[pid]["image"],
        )
        for pid in SAMPLE_IDS
    ]


def with_price(items: list[Item], product_id: str, price: float) -> list[Item]:
    return [replace(i, price=price) if i.id == product_id else i for i in items]


def merchant_rss(items: list[Item], base: str) -> bytes:
    """Google Merchant Center RSS 2.0 (g: namespace)."""
    entries = "".join(
        f"<item><g:id>{escape(i.id)}</g:id><title>{escape(i.title)}</title>"
        f"<description>{escape(i.description)}</description><link>{base}/p/{i.id}</link>"
        f"<g:image_link>{base}{i.image}</g:image_link><g:price>{i.price:.2f} SEK</g:price>"
        f"<g:availability>{'in_stock' if i.in_stock else 'out_of_stock'}</g:availability>"
        f"<g:product_type>Grocery &gt; {escape(i.category)}</g:product_type></item>\n"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
        f"<channel><title>Shop</title><link>{base}</link>\n{entries}</channel></rss>\n"
    ).encode()


def merchant_tsv(items: list[Item], base: str) -> bytes:
    """The tab-separated Merchant Center / Meta catalog form, same attribute names."""
    header = "id\ttitle\tdescription\tlink\timage_link\tprice\tavailability\tproduct_type"
    lines = [
        "\t".join(
            [
                i.id,
                i.title,
                i.description,
                f"{base}/p/{i.id}",
                f"{base}{i.image}",
                f"{i.price:.2f} SEK",
                "in stock" if i.in_stock else "out of stock",
                f"Grocery > {i.category}",
            ]
        )
        for i in items
    ]
    return ("\n".join([header, *lines]) + "\n").encode()


def yml(items: list[Item], base: str) -> bytes:
    """YML (yml_catalog/shop/offers/offer) with a category tree."""
    categories = sorted({i.category for i in items})
    ids = {name: str(n) for n, name in enumerate(categories, start=2)}
    cats = '<category id="1">Grocery</category>' + "".join(
        f'<category id="{ids[name]}" parentId="1">{escape(name)}</category>' for name in categories
    )
    offers = "".join(
        f'<offer id={quoteattr(i.id)} available="{"true" if i.in_stock else "false"}">'
        f"<url>{base}/p/{i.id}</url><price>{i.price:.2f}</price><currencyId>SEK</currencyId>"
        f"<categoryId>{ids[i.category]}</categoryId><picture>{base}{i.image}</picture>"
        f"<name>{escape(i.title)}</name><description><![CDATA[{i.description}]]></description></offer>\n"
        for i in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE yml_catalog SYSTEM "shops.dtd">\n'
        '<yml_catalog date="2026-12-05 12:00"><shop><name>Shop</name><url>' + base + "</url>"
        '<currencies><currency id="SEK" rate="1"/></currencies>'
        f"<categories>{cats}</categories><offers>\n{offers}</offers></shop></yml_catalog>\n"
    ).encode()


def shopify_pages(items: list[Item], base: str, per_page: int = 2) -> list[bytes]:
    """Shopify's public /products.json, `per_page` products a page, then an empty page."""
    products = [
        {
            "id": 1000 + n,
            "title": i.title,
            "handle": i.id,
            "body_html": i.description,
            "vendor": "Shop",
            "product_type": i.category,
            "tags": [],
            "variants": [
                {
                    "id": 2000 + n,
                    "title": "Default Title",
                    "sku": "",
                    "price": f"{i.price:.2f}",
                    "compare_at_price": None,
                    "available": i.in_stock,
                    "option1": "Default Title",
                    "featured_image": None,
                }
            ],
            "images": [{"id": 3000 + n, "src": f"{base}{i.image}", "position": 1, "variant_ids": []}],
            "options": [{"name": "Title", "position": 1, "values": ["Default Title"]}],
        }
        for n, i in enumerate(items)
    ]
    pages = [products[start : start + per_page] for start in range(0, len(products), per_page)]
    return [json.dumps({"products": page}).encode() for page in [*pages, []]]


def woocommerce_pages(items: list[Item], base: str, per_page: int = 2) -> list[bytes]:
    """WooCommerce Store API /wp-json/wc/store/v1/products pages (prices in minor units), then an empty page."""
    products = [
        {
            "id": 500 + n,
            "name": i.title,
            "slug": i.id,
            "permalink": f"{base}/p/{i.id}",
            "sku": i.id,
            "type": "simple",
            "description": i.description,
            "short_description": "",
            "prices": {
                "price": str(round(i.price * 100)),
                "regular_price": str(round(i.price * 100)),
                "sale_price": str(round(i.price * 100)),
                "currency_code": "SEK",
                "currency_minor_unit": 2,
            },
            "images": [{"id": 900 + n, "src": f"{base}{i.image}", "name": i.id, "alt": ""}],
            "categories": [{"id": 30, "name": i.category, "slug": i.category.lower()}],
            "tags": [],
            "attributes": [],
            "variations": [],
            "is_in_stock": i.in_stock,
            "is_purchasable": True,
        }
        for n, i in enumerate(items)
    ]
    pages = [products[start : start + per_page] for start in range(0, len(products), per_page)]
    return [json.dumps(page).encode() for page in [*pages, []]]
