"""`visearch serve` keeps the shop's feed in step: a sync at start, `POST /api/v1/feeds:sync` on demand,
figures on /metrics and /api/v1/stats. Real HTTP on 127.0.0.1: uvicorn serves the app, a fake shop serves
the feed and its photos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.conftest import free_port
from tests.core.feeds import merchant_rss, sample_items, with_price
from tests.fakes.shop import FakeShop, fake_shop
from visearch.bots.server.app import create_app
from visearch.bots.server.config import load_server_settings
from visearch.bots.telegram.config import load_telegram_settings
from visearch.core.config import load_settings
from visearch.core.search import SearchService
from visearch.core.store.factory import open_store

KEY = "feed-test-key"


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    with fake_shop() as running:
        for item in sample_items():
            running.serve(item.image, item.photo.read_bytes(), "image/jpeg")
        running.serve("/feed.xml", merchant_rss(sample_items(), running.base))
        yield running


async def start_server(tmp_path: Path, offline_encoder: Any, **server: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(data_dir=tmp_path / "data", encoder="offline", fetch_retries=0, currency="SEK")
    port = free_port()
    options: dict[str, object] = {"api_keys": KEY, "rate_limit": 0, **server}
    app = create_app(
        settings,
        load_server_settings(**options),
        load_telegram_settings(token=None),
        service=SearchService(offline_encoder, open_store(settings), settings),
    )
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        uv.should_exit = True
        await task
        await app.state.visearch.service.close()


@pytest.fixture
async def http(shop: FakeShop, tmp_path: Path, offline_encoder: Any) -> AsyncIterator[httpx.AsyncClient]:
    feed = shop.url("/feed.xml") + "?access_token=shop-secret"
    async for client in start_server(tmp_path, offline_encoder, feed_url=feed, feed_interval=3600):
        yield client


async def first_sync(http: httpx.AsyncClient) -> dict[str, Any]:
    """The feed's status once the sync the server runs at start is over."""
    for _ in range(300):
        stats = await http.get("/api/v1/stats")  # 503 until the first sync created the collection
        feeds = stats.json()["feeds"] if stats.status_code == 200 else []
        if feeds and feeds[0]["runs"]:
            return dict(feeds[0])
        await asyncio.sleep(0.05)
    raise AssertionError("the sync at start never finished")


async def test_the_feed_is_synced_at_start_and_on_demand(http: httpx.AsyncClient, shop: FakeShop) -> None:
    status = await first_sync(http)
    assert status["last_outcome"] == "synced" and status["items"] == 4 and status["counts"]["indexed"] == 4
    assert "shop-secret" not in str(status)
    found = (await http.post("/api/v1/search", json={"text": "banana"})).json()
    assert any(card["product_id"] == "banana" for card in found["cards"])

    shop.serve("/feed.xml", merchant_rss(with_price(sample_items(), "banana", 3.5), shop.base))
    answer = await http.post("/api/v1/feeds:sync?wait=true", headers={"X-API-Key": KEY})
    assert answer.status_code == 200, answer.text
    [run] = answer.json()["runs"]
    assert run["outcome"] == "synced" and run["counts"]["updated"] == 1 and run["counts"]["embedded"] == 0
    found = (await http.post("/api/v1/search", json={"text": "banana"})).json()
    assert next(card for card in found["cards"] if card["product_id"] == "banana")["price"] == 3.5

    feed_hits, photo_hits = shop.hits_of("/feed.xml"), shop.hits_of("/img/")
    [run] = (await http.post("/api/v1/feeds:sync?wait=true", headers={"X-API-Key": KEY})).json()["runs"]
    assert run["outcome"] == "unchanged" and run["requests"] == 1
    assert (shop.hits_of("/feed.xml"), shop.hits_of("/img/")) == (feed_hits + 1, photo_hits)

    metrics = (await http.get("/metrics")).text
    feed = shop.url("/feed.xml")
    assert f'visearch_feed_items{{feed="{feed}"}} 4.0' in metrics
    assert f'visearch_feed_syncs_total{{feed="{feed}",outcome="unchanged"}} 1.0' in metrics
    assert "visearch_feed_last_success_timestamp_seconds" in metrics and "shop-secret" not in metrics


async def test_the_trigger_needs_a_key_and_answers_at_once_without_wait(http: httpx.AsyncClient) -> None:
    await first_sync(http)
    assert (await http.post("/api/v1/feeds:sync")).status_code == 401
    assert (await http.post("/api/v1/feeds:sync", headers={"X-API-Key": "wrong"})).status_code == 401
    answer = await http.post("/api/v1/feeds:sync", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 202 and answer.json()["started"] is True


async def test_a_server_without_feeds_says_how_to_configure_one(tmp_path: Path, offline_encoder: Any) -> None:
    async for http in start_server(tmp_path, offline_encoder):
        answer = await http.post("/api/v1/feeds:sync", headers={"X-API-Key": KEY})
        assert answer.status_code == 404 and "VISEARCH_FEED_URL" in answer.json()["error"]


def test_a_feed_location_with_another_scheme_is_refused_at_start() -> None:
    from visearch.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"VISEARCH_FEED_URL: .*ftp:// is not a feed location"):
        load_server_settings(feed_url="ftp://shop.example/feed.xml")
