"""Feeds by URL, synced into a real embedded collection with the offline encoder, from a fake shop on 127.0.0.1.

What a shop relies on: every format gives the same products; an unchanged feed costs one request and
no work; a changed price is searchable after the next sync without downloading the photos again; a
feed that fails to arrive whole, or is no feed, or suddenly lists a tenth of the shop, deletes nothing.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.core.feeds import (
    Item,
    merchant_rss,
    merchant_tsv,
    sample_items,
    shopify_pages,
    with_price,
    woocommerce_pages,
    yml,
)
from tests.fakes.shop import FakeShop, fake_shop
from visearch.core.config import Settings, load_settings
from visearch.core.domain import Product, Query
from visearch.core.errors import MassDeleteError
from visearch.core.ingest.feeds import FeedIntake, FeedSync, Unchanged
from visearch.core.search import SearchService
from visearch.core.store.base import VectorStore
from visearch.core.store.factory import open_store


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    with fake_shop() as running:
        yield running


def serve_photos(shop: FakeShop, items: list[Item], delay_s: float = 0.0) -> None:
    for item in items:
        shop.serve(item.image, item.photo.read_bytes(), "image/jpeg", delay_s=delay_s)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data", encoder="offline", batch_size=4, fetch_retries=0, currency="SEK", feed_timeout=20
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[VectorStore]:
    opened = open_store(settings)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def feeds(offline_encoder: Any, store: VectorStore, settings: Settings) -> FeedSync:
    return FeedSync(offline_encoder, store, settings)


async def stored_products(store: VectorStore) -> dict[str, Product]:
    found: dict[str, Product] = {}
    async for point in store.scroll(batch_size=64):
        found[str(point.payload["product_id"])] = Product.from_payload(point.payload)
    return found


def facts(product: Product) -> tuple[Any, ...]:
    """What a customer sees of a product in an answer, whatever the feed's format."""
    return (product.title, product.price, product.currency, product.in_stock, product.category, product.description)


FORMATS: dict[str, Callable[[FakeShop, list[Item]], str]] = {
    "merchant-rss": lambda shop, items: shop.serve("/feed.xml", merchant_rss(items, shop.base)),
    "merchant-tsv": lambda shop, items: shop.serve("/feed.txt", merchant_tsv(items, shop.base), "text/plain"),
    "yml": lambda shop, items: shop.serve("/yml.xml", yml(items, shop.base)),
    "shopify": lambda shop, items: shop.serve_pages("/products.json", shopify_pages(items, shop.base)),
    "woocommerce": lambda shop, items: shop.serve_pages(
        "/wp-json/wc/store/v1/products", woocommerce_pages(items, shop.base), total_header=True
    ),
}


async def test_every_feed_format_indexes_to_the_same_products(
    shop: FakeShop, offline_encoder: Any, tmp_path: Path
) -> None:
    items = sample_items()
    serve_photos(shop, items)
    seen: dict[str, dict[str, tuple[Any, ...]]] = {}
    for name, publish in FORMATS.items():
        settings = load_settings(data_dir=tmp_path / name, encoder="offline", fetch_retries=0, currency="SEK")
        store = open_store(settings)
        try:
            run = await FeedSync(offline_encoder, store, settings).run(publish(shop, items))
            assert run.outcome == "synced", (name, run.error)
            assert run.summary is not None and run.summary.ok, (name, run.summary.problems)
            seen[name] = {pid: facts(p) for pid, p in (await stored_products(store)).items()}
        finally:
            await store.close()
    expected = {
        i.id: (i.title, i.price, "SEK", i.in_stock, i.category, i.description[3:-4].replace("&amp;", "&"))
        for i in items
    }
    for name, products in seen.items():
        assert products == expected, name
    assert shop.hits_of("/products.json") == 3  # two pages of two products, then the empty page ends it


async def test_an_unchanged_feed_costs_one_request_and_no_work(
    shop: FakeShop, feeds: FeedSync, store: VectorStore
) -> None:
    items = sample_items()
    serve_photos(shop, items)
    url = shop.serve("/feed.xml", merchant_rss(items, shop.base))
    first = await feeds.run(url)
    assert first.outcome == "synced" and first.summary is not None and first.summary.embedded == 4
    photos_before, feed_before = shop.hits_of("/img/"), shop.hits_of("/feed.xml")

    again = await feeds.run(url)

    assert again.outcome == "unchanged" and again.summary is None  # nothing parsed, embedded or written
    assert again.requests == 1 and shop.hits_of("/feed.xml") == feed_before + 1 and shop.not_modified == 1
    assert shop.hits_of("/img/") == photos_before
    assert feeds.status[url].unchanged == 1 and feeds.status[url].items == 4


async def test_a_changed_price_is_searchable_after_the_next_sync_without_refetching_photos(
    shop: FakeShop, feeds: FeedSync, store: VectorStore, settings: Settings, offline_encoder: Any
) -> None:
    items = sample_items()
    serve_photos(shop, items)
    url = shop.serve("/feed.xml", merchant_rss(items, shop.base))
    await feeds.run(url)
    photos_before = shop.hits_of("/img/")

    shop.serve("/feed.xml", merchant_rss(with_price(items, "banana", 3.5), shop.base))
    run = await feeds.run(url)

    assert run.outcome == "synced" and run.summary is not None
    assert (run.summary.embedded, run.summary.updated, run.summary.unchanged) == (0, 1, 3)
    assert shop.hits_of("/img/") == photos_before  # the stored photos' URLs did not change: not downloaded
    service = SearchService(offline_encoder, store, settings)
    result = await service.search(Query(text="banana"))
    banana = next(card for card in result.cards if card.product_id == "banana")
    assert banana.price == 3.5


async def test_a_search_during_a_sync_is_answered(
    shop: FakeShop, feeds: FeedSync, store: VectorStore, settings: Settings, offline_encoder: Any
) -> None:
    items = sample_items()
    serve_photos(shop, items[:2])
    first = await feeds.run(shop.serve("/feed.xml", merchant_rss(items[:2], shop.base)))
    assert first.outcome == "synced"
    serve_photos(shop, items[2:], delay_s=0.4)  # a slow image host: the next sync takes a while
    shop.serve("/feed.xml", merchant_rss(items, shop.base))
    service = SearchService(offline_encoder, store, settings)

    sync = asyncio.create_task(feeds.run(shop.url("/feed.xml")))
    await asyncio.sleep(0.1)
    result = await asyncio.wait_for(service.search(Query(text="banana")), timeout=5)

    assert not sync.done(), "the sync was over before the search: the test proves nothing"
    assert any(card.product_id == "banana" for card in result.cards)
    assert (await sync).outcome == "synced"


@pytest.mark.parametrize(
    ("publish", "expected"),
    [
        (
            lambda shop: shop.serve("/feed.xml", b"<rss><channel><item><title>x</item></channel></rss>"),
            "not well-formed",
        ),
        (
            lambda shop: shop.serve(
                "/feed.xml",
                b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
                b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><rss xmlns:g="http://base.google.com/ns/1.0"><channel>'
                b"<item><title>&c;</title></item></channel></rss>",
            ),
            "entities",
        ),
        (
            lambda shop: shop.serve(
                "/feed.xml",
                b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<rss xmlns:g="http://base.google.com/ns/1.0"><channel><item><title>&x;</title></item></channel></rss>',
            ),
            "refused",
        ),
        (lambda shop: shop.serve("/feed.xml", merchant_rss(sample_items(), shop.base), truncate_at=700), "cut short"),
        (lambda shop: shop.serve("/feed.xml", b"oops", "text/plain", status=500), "HTTP 500"),
        (lambda shop: shop.url("/nowhere.xml"), "HTTP 404"),
        (lambda shop: shop.serve("/feed.xml", b"<html><body>shop</body></html>", "text/html"), "web page"),
    ],
    ids=["malformed", "billion-laughs", "external-entity", "truncated", "http-500", "http-404", "html-page"],
)
async def test_a_feed_that_cannot_be_had_whole_deletes_nothing(
    shop: FakeShop, feeds: FeedSync, store: VectorStore, publish: Callable[[FakeShop], str], expected: str
) -> None:
    items = sample_items()
    serve_photos(shop, items)
    assert (await feeds.run(shop.serve("/good.xml", merchant_rss(items, shop.base)))).outcome == "synced"
    before = await stored_products(store)

    run = await feeds.run(publish(shop))

    assert run.outcome == "failed" and run.error is not None and expected in run.error
    assert "?" not in run.error  # the URL is shown without its query string
    assert await stored_products(store) == before
    assert feeds.status[run.source].failures == 1


async def test_a_feed_listing_a_tenth_of_the_shop_deletes_nothing(
    shop: FakeShop, tmp_path: Path, offline_encoder: Any, settings: Settings, store: VectorStore
) -> None:
    items = [
        Item(
            f"p{n}",
            f"Product {n}",
            "<p>x</p>",
            1.0 + n,
            True,
            "Misc",
            f"/img/p{n % 4}.jpg",
            sample_items()[n % 4].photo,
        )
        for n in range(20)
    ]
    for n in range(4):
        shop.serve(f"/img/p{n}.jpg", sample_items()[n].photo.read_bytes(), "image/jpeg")
    url = shop.serve("/feed.xml", merchant_rss(items, shop.base))
    intake = FeedIntake(settings)
    feeds = FeedSync(offline_encoder, store, settings, intake)
    assert (await feeds.run(url)).outcome == "synced"

    shop.serve("/feed.xml", merchant_rss(items[:2], shop.base))
    prepared = await intake.prepare(url)
    assert not isinstance(prepared, Unchanged)
    with pytest.raises(MassDeleteError, match="more than half"):
        await feeds.apply(prepared)
    run = await feeds.run(url)

    assert run.outcome == "failed" and run.error is not None and "18" in run.error
    assert len(await stored_products(store)) == 20


async def test_gzip_feeds_and_an_item_without_image(shop: FakeShop, feeds: FeedSync, store: VectorStore) -> None:
    items = sample_items()
    serve_photos(shop, items)
    document = merchant_rss(items, shop.base).replace(
        f"<g:image_link>{shop.base}/img/banana.jpg</g:image_link>".encode(), b""
    )
    encoded = await feeds.run(shop.serve("/encoded.xml", document, gzip=True))  # Content-Encoding: gzip
    packed = await feeds.run(shop.serve("/feed.xml.gz", gzip.compress(document), "application/gzip"))  # a .gz file

    for run in (encoded, packed):
        assert run.outcome == "synced" and run.summary is not None
        assert run.summary.skipped == 1 and "banana" in str(run.summary.problems[0])
        assert "image" in str(run.summary.problems[0])
    assert sorted(await stored_products(store)) == ["arla-standard-milk", "granny-smith", "tropicana-apple-juice"]


async def test_a_feed_too_large_is_refused(shop: FakeShop, offline_encoder: Any, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", encoder="offline", feed_max_bytes=2048)
    url = shop.serve("/feed.xml", merchant_rss(sample_items() * 3, shop.base))
    store = open_store(settings)
    try:
        run = await FeedSync(offline_encoder, store, settings).run(url + "?token=s3cret")
    finally:
        await store.close()
    assert run.outcome == "failed" and run.error is not None and "VISEARCH_FEED_MAX_BYTES" in run.error
    assert "s3cret" not in run.error and "s3cret" not in run.source
