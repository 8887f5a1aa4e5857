"""The platform-neutral conversation driven directly: a real SearchService (the offline encoder and
the embedded store of `bot_catalog`), real photos, no channel. The same situation gets the same
notice reason whatever the channel, an album is answered once, the rate limit is told once and
then silent, and an unexpected error is a FAILURE notice with its traceback in the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from visearch.bots.conversation import (
    Cards,
    Channel,
    ContentKind,
    Conversation,
    ConversationSettings,
    IncomingFile,
    MediaTooLargeError,
    Metrics,
    NotAnImageError,
    Notice,
    NoticeReason,
    Silence,
    search_outcome_of,
    wording,
)
from visearch.core.config import Settings
from visearch.core.errors import (
    CollectionNotFoundError,
    EncoderBusyError,
    ImageError,
    StoreError,
    VisearchError,
)
from visearch.core.search import CursorExpiredError, PointNotFoundError, SearchService
from visearch.core.store.factory import open_store

QUERIES = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery" / "queries"
TELEGRAM = Channel("telegram", 20 * 1024 * 1024, admins=frozenset({"777"}), cards_per_answer=3)
VIBER = Channel("viber", 10 * 1024 * 1024, cards_per_answer=3)
WHATSAPP = Channel("whatsapp", 5 * 1024 * 1024, cards_per_answer=3)
CHANNELS = [TELEGRAM, VIBER, WHATSAPP]


def photo(name: str) -> bytes:
    return (QUERIES / name).read_bytes()


class Files:
    """A channel's files by id, as its download would give them; counts the downloads."""

    def __init__(self, **files: bytes) -> None:
        self.files = files
        self.downloads: list[str] = []

    async def download(self, file: IncomingFile) -> bytes:
        self.downloads.append(file.file_id)
        return self.files[file.file_id]


@pytest.fixture
async def service(bot_catalog: Settings, offline_encoder) -> AsyncIterator[SearchService]:
    searcher = SearchService(offline_encoder, open_store(bot_catalog), bot_catalog)
    try:
        yield searcher
    finally:
        await searcher.close()


def conversation(service: SearchService, **settings: object) -> Conversation:
    options: dict = {"rate_limit": 0, "album_wait": 0.3, "shop_name": "Test Shop"}
    options.update(settings)
    return Conversation(service, ConversationSettings(**options), Metrics())


def reason(answer: object) -> NoticeReason:
    assert isinstance(answer, Notice), answer
    return answer.reason


# --- one outcome per situation, whatever the channel --------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.name)
async def test_the_same_situation_gets_the_same_notice_on_every_channel(
    service: SearchService, channel: Channel
) -> None:
    talk = conversation(service)
    files = Files(broken=photo("banana.jpg")[:300], milk=photo("arla-standard-milk.jpg"))
    user = "u1"
    assert (
        reason(await talk.photos(channel, user, IncomingFile("broken"), None, files.download)) is NoticeReason.BAD_IMAGE
    )
    assert reason(await talk.button(channel, user, "page:gone-cursor")) is NoticeReason.EXPIRED
    assert (
        reason(await talk.text(channel, user, "page:gone-cursor")) is NoticeReason.EXPIRED
    )  # a button that replies with text
    assert (
        reason(await talk.button(channel, user, "more:00000000-0000-0000-0000-000000000000"))
        is NoticeReason.PRODUCT_GONE
    )
    too_big = await talk.photos(
        channel, user, IncomingFile("milk", file_size=channel.max_media_bytes + 1), None, files.download
    )
    assert reason(too_big) is NoticeReason.TOO_LARGE and too_big.limit_bytes == channel.max_media_bytes  # type: ignore[union-attr]
    pdf = await talk.document(channel, user, IncomingFile("doc", mime_type="application/pdf"), None, files.download)
    assert reason(pdf) is NoticeReason.NOT_AN_IMAGE and "PDF" in wording.ENGLISH.words(pdf)  # type: ignore[arg-type]
    sticker = talk.unsupported(channel, ContentKind.STICKER)
    assert reason(sticker) is NoticeReason.UNSUPPORTED and "stickers" in wording.ENGLISH.words(sticker)  # type: ignore[arg-type]
    assert reason(await talk.text(channel, user, "category:milk")) is NoticeReason.FILTERS_ONLY
    assert reason(await talk.text(channel, user, "  ")) is NoticeReason.WELCOME
    assert reason(await talk.text(channel, user, "/help")) is NoticeReason.WELCOME
    assert reason(await talk.text(channel, user, "/stats")) is NoticeReason.ADMIN_ONLY
    assert files.downloads == ["broken"], "nothing over the limit or not an image is downloaded"
    cards = await talk.photos(channel, user, IncomingFile("milk"), "under 100", files.download)
    assert isinstance(cards, Cards) and len(cards.cards) == 3
    assert any(c.title == "Arla Standard Milk" for c in cards.cards)


async def test_download_problems_are_typed_notices(service: SearchService) -> None:
    talk = conversation(service)

    async def too_large(file: IncomingFile) -> bytes:
        raise MediaTooLargeError()

    async def not_an_image(file: IncomingFile) -> bytes:
        raise NotAnImageError("application/pdf")

    async def unreachable(file: IncomingFile) -> bytes:
        raise ConnectionError("the channel's file API is down")

    async def counted_too_large(file: IncomingFile) -> bytes:
        return b"\xff\xd8" + b"0" * WHATSAPP.max_media_bytes

    expected = {
        too_large: NoticeReason.TOO_LARGE,
        not_an_image: NoticeReason.NOT_AN_IMAGE,
        unreachable: NoticeReason.DOWNLOAD_FAILED,
        counted_too_large: NoticeReason.TOO_LARGE,
    }
    for download, wanted in expected.items():
        assert reason(await talk.photos(WHATSAPP, "u", IncomingFile("x"), None, download)) is wanted


@pytest.mark.parametrize(
    ("error", "wanted"),
    [
        (EncoderBusyError("42 queries are waiting"), NoticeReason.BUSY),
        (StoreError("the store is unreachable"), NoticeReason.UNAVAILABLE),
        (CollectionNotFoundError("no collection"), NoticeReason.UNAVAILABLE),
        (VisearchError("something of ours"), NoticeReason.UNAVAILABLE),
        (ImageError("too small"), NoticeReason.BAD_IMAGE),
        (CursorExpiredError("gone"), NoticeReason.EXPIRED),
        (PointNotFoundError("gone"), NoticeReason.PRODUCT_GONE),
        (RuntimeError("a bug"), NoticeReason.FAILURE),
    ],
)
def test_one_error_mapping(error: Exception, wanted: NoticeReason) -> None:
    notice = search_outcome_of(error)
    assert notice.reason is wanted and notice.error is error
    assert wording.ENGLISH.words(notice)  # every reason has its words


async def test_an_unexpected_error_is_a_failure_notice_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_service() -> SearchService:
        raise RuntimeError("the service exploded")

    talk = Conversation(broken_service, ConversationSettings(rate_limit=0), Metrics())
    with caplog.at_level(logging.ERROR, logger="visearch.conversation"):
        answer = await talk.text(VIBER, "u", "green apple")
    assert reason(answer) is NoticeReason.FAILURE
    assert "Something went wrong" in wording.ENGLISH.words(answer)  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if r.name == "visearch.conversation"]
    assert record.exc_info and "the service exploded" in caplog.text and "Traceback" in caplog.text
    assert talk.metrics.counts("viber")["errors"] == 1


# --- albums, rate limit, paging, commands, metrics ------------------------------------------------------


async def test_an_album_is_collected_and_answered_once(service: SearchService) -> None:
    talk = conversation(service)
    files = Files(a=photo("banana.jpg"), b=photo("banana.jpg"), c=photo("avocado.jpg"))

    async def arrive(i: int, file_id: str) -> object:
        await asyncio.sleep(0.05 * i)
        return await talk.photos(
            TELEGRAM, "u", IncomingFile(file_id), "under 100" if i == 2 else None, files.download, album="album-1"
        )

    answers = await asyncio.gather(*(arrive(i, f) for i, f in enumerate("abc")))
    assert [type(a) for a in answers].count(Silence) == 2
    [cards] = [a for a in answers if not isinstance(a, Silence)]
    assert isinstance(cards, Cards) and cards.cards
    assert sorted(files.downloads) == ["a", "b", "c"], "every photo of the album is used, once"
    assert talk.metrics.counts("telegram")["searches"] == 1
    assert not len(talk.albums), "nothing left behind"


async def test_the_rate_limit_is_told_once_then_silent(service: SearchService) -> None:
    talk = conversation(service, rate_limit=2, rate_window=60)
    first = [await talk.text(VIBER, "busy-user", "apple") for _ in range(2)]
    assert all(isinstance(a, Cards) for a in first)
    told = await talk.text(VIBER, "busy-user", "apple")
    assert reason(told) is NoticeReason.RATE_LIMITED and told.wait_seconds and told.wait_seconds > 0  # type: ignore[union-attr]
    assert isinstance(await talk.text(VIBER, "busy-user", "apple"), Silence)
    assert isinstance(await talk.button(VIBER, "busy-user", "page:x"), Silence)
    assert isinstance(await talk.text(VIBER, "another-user", "apple"), Cards)
    assert isinstance(await talk.text(TELEGRAM, "busy-user", "apple"), Cards), "keys are per channel"
    assert talk.metrics.counts("viber") == {"searches": 3, "rate_limited": 3, "errors": 0}


async def test_show_more_pages_on_and_more_like_this_leaves_the_product_out(service: SearchService) -> None:
    talk = conversation(service)
    page1 = await talk.text(WHATSAPP, "u", "apple")
    assert isinstance(page1, Cards) and page1.next_cursor and not page1.paged
    page2 = await talk.button(WHATSAPP, "u", f"page:{page1.next_cursor}")
    assert isinstance(page2, Cards) and page2.paged
    assert not {c.point_id for c in page1.cards} & {c.point_id for c in page2.cards}
    similar = await talk.button(WHATSAPP, "u", f"more:{page1.cards[0].point_id}")
    assert isinstance(similar, Cards) and page1.cards[0].product_id not in {c.product_id for c in similar.cards}
    assert isinstance(await talk.button(WHATSAPP, "u", "shop:own-button"), Silence), "not our button"


async def test_commands_and_stats_read_the_same_counts(service: SearchService) -> None:
    talk = conversation(service)
    await talk.text(TELEGRAM, "777", "green apple")
    listing = await talk.command(TELEGRAM, "1", "filters")
    assert reason(listing) is NoticeReason.FILTERS_LIST and listing.facets.products == 82  # type: ignore[union-attr]
    stats = await talk.command(TELEGRAM, "777", "stats")
    assert reason(stats) is NoticeReason.STATS
    assert stats.stats["searches"] == 1 and stats.stats["points"] == 82  # type: ignore[union-attr]
    assert "searches: 1" in wording.ENGLISH.words(stats)  # type: ignore[arg-type]
    assert isinstance(await talk.command(TELEGRAM, "1", "unknown"), Silence)
    exposed = talk.metrics.render().decode()  # type: ignore[attr-defined]
    assert 'visearch_answers_total{channel="telegram",outcome="cards"} 1.0' in exposed
    assert 'visearch_search_latency_seconds_count{platform="telegram"} 1.0' in exposed


async def test_telegram_keeps_its_own_rate_limit_inside_serve_only_when_set(service: SearchService) -> None:
    """One limit (VISEARCH_RATE_LIMIT) serves every channel of `visearch serve`; a shop that set
    VISEARCH_TELEGRAM_RATE_LIMIT before keeps it for Telegram (deprecated there, not silently dropped)."""
    from visearch.bots.telegram.config import TelegramSettings
    from visearch.bots.telegram.conversation import TelegramConversation

    shared = conversation(service, rate_limit=5, rate_window=60)
    set_by_shop = TelegramConversation(TelegramSettings(rate_limit=1), service=service, conversation=shared)
    await set_by_shop.handle_text(501, "apple")
    assert "wait" in " ".join(str(r) for r in await set_by_shop.handle_text(501, "apple")).lower()

    not_set = TelegramConversation(TelegramSettings(), service=service, conversation=shared)
    assert not_set.channel.limiter is None  # the shared limit: 5 searches pass
    for _ in range(5):
        assert not isinstance(await shared.text(not_set.channel, "502", "apple"), Notice)
    assert reason(await shared.text(not_set.channel, "502", "apple")) is NoticeReason.RATE_LIMITED
