"""The shared Telegram presentation layer and the helpers both adapters rely on."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.telegram import FakeTelegram
from visearch.bots.conversation import Notice, NoticeReason, SearchKind
from visearch.bots.conversation import wording as say
from visearch.bots.ratelimit import RateLimiter
from visearch.bots.telegram import presentation as ui
from visearch.bots.telegram.conversation import AlbumCollector, IncomingFile, PhotoIdCache
from visearch.core.domain import Card, Facets, Filters, price_text


def card(**overrides: object) -> Card:
    fields: dict = dict(
        product_id="p1",
        point_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        title="Milk",
        image="images/milk.jpg",
        price=12.5,
        currency="SEK",
        url="https://shop.example/milk",
        description="Fresh milk.",
        category="Dairy",
        score=0.9,
        image_file="/catalog/images/milk.jpg",
    )
    fields.update(overrides)
    return Card(**fields)


@pytest.mark.parametrize("title", ["<b>bold</b> & co", "*stars* _under_ `tick` [link](x)", "🥛" * 600, "a" * 5000])
def test_caption_is_valid_html_within_the_limit_whatever_the_title(title: str) -> None:
    caption = ui.card_caption(card(title=title, description="<script>alert('x')</script> " * 100))
    visible = FakeTelegram.visible_text(caption, "HTML")  # raises like Telegram on bad entities
    assert FakeTelegram.utf16_len(visible) <= ui.CAPTION_LIMIT
    assert visible.startswith(ui.cut(title, ui.TITLE_LIMIT))


def test_caption_shows_price_category_and_stock() -> None:
    visible = FakeTelegram.visible_text(ui.card_caption(card(in_stock=False)), "HTML")
    assert visible.splitlines() == ["Milk", "SEK\u00a012.50 · Dairy · out of stock", "Fresh milk."]


def test_cut_counts_emoji_as_telegram_does() -> None:
    text = "🥛" * 10
    assert ui.utf16_len(text) == 20
    cut = ui.cut(text, 9)
    assert ui.utf16_len(cut) <= 9 and cut.endswith("…")


@pytest.mark.parametrize(
    ("price", "currency", "shown"),
    [(12.5, "SEK", "12.50 SEK"), (12.0, "EUR", "12 EUR"), (1234.5, None, "1\u202f234.50"), (None, "SEK", "")],
)
def test_prices(price: float | None, currency: str | None, shown: str) -> None:
    assert price_text(price, currency) == shown  # the one price format every channel and the CLI use


def test_buttons_fit_telegram_limits() -> None:
    rows = ui.card_buttons(card(), next_cursor="abcdefghijkl")
    flat = [b for row in rows for b in row]
    assert [b.text for b in flat] == ["🔍 More like this", "🛒 Open in shop", "Show more ▸"]
    assert all(len(b.callback_data.encode()) <= ui.CALLBACK_DATA_LIMIT for b in flat if b.callback_data)


def test_no_shop_button_for_a_product_without_a_web_link() -> None:
    rows = ui.card_buttons(card(url="javascript:alert(1)"))
    assert [b.text for row in rows for b in row] == ["🔍 More like this"]


def test_only_the_last_card_has_show_more_and_cards_without_images_are_text() -> None:
    replies = ui.card_replies([card(), card(product_id="p2", image=None, image_file=None)], next_cursor="cur")
    assert isinstance(replies[0], ui.PhotoReply) and isinstance(replies[1], ui.TextReply)
    assert not any(b.text.startswith("Show more") for row in replies[0].buttons for b in row)
    assert any(b.callback_data == "page:cur" for row in replies[1].buttons for b in row)


def test_show_more_is_removed_from_a_keyboard() -> None:
    rows = [
        [{"text": "More", "callback_data": "more:x"}, {"text": "Shop", "url": "https://s"}],
        [{"text": "Show more", "callback_data": "page:y"}],
    ]
    assert ui.without_page_button(rows) == rows[:1]


def test_filters_text_lists_values_with_counts_and_stays_valid() -> None:
    facets = Facets(
        products=3,
        categories={"Dairy & <Eggs>": 2, "Fruit": 1},
        brands={"Arla": 2},
        tags={"eco": 1},
        price_min=5,
        price_max=40,
        currencies=["SEK"],
        in_stock=2,
    )
    visible = FakeTelegram.visible_text(ui.notice_text(Notice(NoticeReason.FILTERS_LIST, facets=facets)), "HTML")
    assert 'category:"Dairy & <Eggs>" (2)' in visible and "brand:Arla (2)" in visible and "#eco (1)" in visible
    assert "SEK\u00a05.00–SEK\u00a040.00" in visible and "2 of 3" in visible


def test_filters_text_is_cut_to_the_message_limit() -> None:
    facets = Facets(
        products=5000,
        categories={f"category number {i}": 1 for i in range(5000)},
        tags={f"tag{i}" * 20: 1 for i in range(500)},
    )
    text = ui.cut_html_lines(say.ENGLISH.filters_lines(facets, say.HTML, shown=400), ui.TEXT_LIMIT)
    assert ui.visible_length(text) <= ui.TEXT_LIMIT
    FakeTelegram.visible_text(text, "HTML")


def test_no_match_names_the_filters_in_the_syntax_users_type() -> None:
    notice = Notice(
        NoticeReason.NO_MATCH, search=SearchKind.TEXT, words="red <shoes>", filters=Filters(price_max=50, in_stock=True)
    )
    text = ui.notice_text(notice)
    visible = FakeTelegram.visible_text(text, "HTML")
    assert "red <shoes>" in visible and "under 50 in stock" in visible


# --- rate limiter, albums, photo cache -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_limit_per_window_and_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(limit=2, window=10, clock=clock)
    assert limiter.hit("u") == 0 and limiter.hit("u") == 0
    clock.now = 4
    assert limiter.hit("u") == pytest.approx(6)
    assert limiter.should_warn("u") and not limiter.should_warn("u")
    assert limiter.hit("other") == 0
    clock.now = 10.5
    assert limiter.hit("u") == 0


def test_rate_limiter_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(limit=1, window=60, max_keys=100, clock=clock)
    for user in range(1000):
        limiter.hit(user)
    assert len(limiter._events) <= 101


def test_rate_limit_zero_means_off() -> None:
    limiter = RateLimiter(limit=0, window=1)
    assert all(limiter.hit("u") == 0 for _ in range(100))


async def test_album_collector_gives_the_whole_album_to_one_caller() -> None:
    albums = AlbumCollector(wait=0.2)

    async def arrive(i: int) -> object:
        await asyncio.sleep(0.05 * i)
        return await albums.collect("g1", IncomingFile(f"f{i}"), "caption" if i == 2 else None)

    results = await asyncio.gather(*(arrive(i) for i in range(4)))
    leaders = [r for r in results if r is not None]
    assert len(leaders) == 1
    assert [f.file_id for f in leaders[0].items] == ["f0", "f1", "f2", "f3"]
    assert leaders[0].caption == "caption"
    assert not albums._albums, "nothing left behind"


def test_photo_id_cache_is_bounded_lru() -> None:
    cache = PhotoIdCache(max_items=2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"
    cache.put("c", "3")
    assert cache.get("b") is None and cache.get("a") == "1" and cache.get("c") == "3"
